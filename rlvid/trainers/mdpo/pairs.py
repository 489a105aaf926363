"""M-DPO preference pairs: how they are formed from scored samples, and how they are stored.

`form_pairs` is VidChain's rule: among the n outputs sampled for one prompt, every two whose metric
differs by at least `min_gap` make a pair, the better-scoring one chosen. Equal scores never pair
(there is nothing to prefer), so a prompt whose outputs all score the same gives no pairs.

A pair folder holds, per process, two append-only JSONL files:

    pairs-rankR.jsonl   one `Pair` per line: prompt id, the sample (JSON, so training rebuilds the
                        video inputs), the chain turn for CoTasks, the rendered prompt, chosen and
                        rejected text and token ids, both scores, optional reference log-probs
    done-rankR.jsonl    one line per finished prompt: its id, every sample's score, the batch tag

A prompt counts as finished only once its `done` line is written, after its pairs; pairs carry the
tag of the generation batch that wrote them, and `read_pairs` keeps only pairs whose tag matches
their prompt's `done` line. So a run killed midway is resumed by skipping finished prompts
(`finished_prompt_ids`) and pairs written by an unfinished batch are ignored, never duplicated.
A folder with a `complete` marker is finished as a whole. `settings.json` records what makes pairs
comparable (model, sampling, metric, threshold, CoTasks); resuming with other settings is an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlvid.data.sample import Sample
from rlvid.rollout.collect import append_lines, drop_torn_tail
from rlvid.trainers.mdpo.cotasks import ChainPrompt

COMPLETE = "complete"
SETTINGS = "settings.json"
GAP_TOLERANCE = 1e-9  # a gap equal to min_gap up to float rounding (0.7 - 0.6 vs 0.1) still pairs


def form_pairs(scores: Sequence[float | None], min_gap: float = 0.0, max_pairs: int = 0,
               texts: Sequence[str] | None = None) -> list[tuple[int, int]]:
    """(chosen, rejected) index pairs among one prompt's samples.

    Every two samples whose scores differ by at least `min_gap` (and by more than 0) pair up, the
    higher score chosen. Pairs are ordered by gap, largest first, then by the indices; `max_pairs`
    > 0 keeps that many from the top. A None or non-finite score (metric not applicable) takes
    part in no pair; with `texts`, a sample whose text repeats an earlier one is skipped (the same
    pair would be trained twice).
    """
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    seen: set[str] = set()
    live = []
    for i, s in enumerate(scores):
        if s is None or not math.isfinite(s):
            continue
        if texts is not None:
            if texts[i] in seen:
                continue
            seen.add(texts[i])
        live.append(i)
    found = []
    for a, i in enumerate(live):
        for j in live[a + 1:]:
            gap = abs(scores[i] - scores[j])
            if gap > 0 and gap >= min_gap - GAP_TOLERANCE:
                chosen, rejected = (i, j) if scores[i] > scores[j] else (j, i)
                found.append((-gap, min(i, j), max(i, j), chosen, rejected))
    found.sort()
    pairs = [(c, r) for *_, c, r in found]
    return pairs[:max_pairs] if max_pairs > 0 else pairs


@dataclass
class Pair:
    """One preference pair: the prompt (a sample, or one CoTasks turn of it), chosen and rejected outputs."""

    prompt_id: str
    sample: Sample
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    chosen_ids: list[int] | None = None  # token ids as sampled (eos kept); None = tokenise the text
    rejected_ids: list[int] | None = None
    cotask: dict[str, Any] | None = None  # {"order": ..., "turn": k} for a CoTasks turn
    prompt: str = ""  # the rendered prompt text, for reading the file (training re-renders it)
    ref_chosen_logp: float | None = None  # reference sequence log-probs (summed over completion tokens)
    ref_rejected_logp: float | None = None
    ref_model: str | None = None  # the model those were computed with
    batch: str = ""  # the generation batch that wrote the pair (resume bookkeeping)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.prompt_id}|{self.batch}|{_short(self.chosen)}|{_short(self.rejected)}"

    @property
    def gap(self) -> float:
        return self.chosen_score - self.rejected_score

    @property
    def video(self) -> str:
        return self.sample.video

    def prompt_item(self) -> Sample | ChainPrompt:
        """What the input builder renders: the sample itself, or its CoTasks turn."""
        if self.cotask is None:
            return self.sample
        return ChainPrompt(self.sample, self.cotask["order"], int(self.cotask["turn"]))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sample"] = self.sample.to_dict()
        d["video"] = self.sample.video
        d["gap"] = self.gap
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "<pair>") -> Pair:
        raw = dict(raw)
        raw.pop("video", None)
        raw.pop("gap", None)
        raw["sample"] = Sample.from_dict(raw["sample"], where)
        return cls(**raw)


def model_key(path: str | Path) -> str:
    """How a pair names the model its reference log-probs came from: the absolute folder, or the hub id."""
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


def _short(text: str) -> str:
    import zlib

    return format(zlib.crc32(text.encode()), "08x")


# ---------------------------------------------------------------- the pair folder


class PairWriter:
    """Appends one process's pairs and finished-prompt records to a pair folder."""

    def __init__(self, folder: str | Path, rank: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pairs_path = self.folder / f"pairs-rank{rank}.jsonl"
        self.done_path = self.folder / f"done-rank{rank}.jsonl"
        for path in (self.pairs_path, self.done_path):
            drop_torn_tail(path)  # a line cut short by a crash would otherwise run into the next one

    def write_batch(self, batch: str, prompt_ids: Sequence[str], scores: Sequence[Sequence[float | None]],
                    pairs: Sequence[Pair]) -> None:
        """The batch's pairs, then its prompts' done lines, each file flushed to disk."""
        append_lines(self.pairs_path, [json.dumps(p.to_dict()) for p in pairs])
        append_lines(self.done_path, [json.dumps({"id": pid, "scores": list(s), "batch": batch,
                                             "pairs": sum(p.prompt_id == pid for p in pairs)})
                                 for pid, s in zip(prompt_ids, scores, strict=True)])


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """Records of a JSONL file; a truncated last line (a write cut short by a crash) is dropped."""
    out = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise ValueError(f"{path}:{n}: not a JSON line") from None
    return out


def done_records(folder: str | Path) -> dict[str, dict]:
    """Finished prompts of every process's done file: id -> its last done record."""
    out: dict[str, dict] = {}
    for path in sorted(Path(folder).glob("done-rank*.jsonl")):
        for _, rec in _read_jsonl(path):
            out[rec["id"]] = rec
    return out


def finished_prompt_ids(folder: str | Path) -> set[str]:
    return set(done_records(folder)) if Path(folder).is_dir() else set()


def read_pairs(folder: str | Path) -> list[Pair]:
    """Every pair of finished prompts in the folder (all processes' files), in a fixed order (by pair id)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"pair folder {folder} does not exist (build it with `rlvid mdpo-pairs`)")
    done = done_records(folder)
    pairs = []
    for path in sorted(folder.glob("pairs-rank*.jsonl")):
        for n, rec in _read_jsonl(path):
            if done.get(rec["prompt_id"], {}).get("batch") == rec.get("batch"):
                pairs.append(Pair.from_dict(rec, f"{path}:{n}"))
    pairs.sort(key=lambda p: p.id)
    return pairs


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / COMPLETE).is_file()


def pair_summary(folder: str | Path) -> dict[str, float]:
    """Counts and means over a pair folder (written to summary.json, logged by the trainer)."""
    done = done_records(folder)
    pairs = read_pairs(folder)
    scores = [s for rec in done.values() for s in rec["scores"] if s is not None]
    return {
        "prompts": float(len(done)),
        "prompts_with_pairs": float(sum(rec["pairs"] > 0 for rec in done.values())),
        "pairs": float(len(pairs)),
        "mean_gap": sum(p.gap for p in pairs) / len(pairs) if pairs else 0.0,
        "mean_score": sum(scores) / len(scores) if scores else 0.0,
    }
