"""Bad samples found mid-run: skipped and counted (`data.skip_bad_samples`), or named and fatal.

A video can pass the load-time checks (the file exists) and still fail to decode at step 2000;
a question can be far longer than any prompt budget. Before a step, each of this process's
samples is screened: its video is probed (header and first frame, once per file and run, so the
decode itself stays in the `gen` phase) and its question is measured against
`data.max_prompt_tokens`. A bad sample is written to
output_dir/bad_steps/ and then, with `data.skip_bad_samples`, replaced by a good sample of the
same batch (batch sizes stay equal on every process; the choice is deterministic, so a resumed
run does the same) and counted; without it the run stops with an error naming the sample id,
its file:line, the step and the cause.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rlvid.data.loaders import DataError, sample_location
from rlvid.data.sample import Sample
from rlvid.data.video import VideoError, probe_video

logger = logging.getLogger("rlvid.trainers")


class BadSampleGuard:
    """Screens a step's samples; `skipped` counts the replaced ones over the run (this process)."""

    def __init__(self, recipe, tokenizer, output_dir: Path, rank: int):
        self.skip = recipe.data.skip_bad_samples
        self.max_prompt_tokens = recipe.data.max_prompt_tokens
        self.tokenizer = tokenizer
        self.output_dir = Path(output_dir)
        self.rank = rank
        self.skipped = 0
        self._probed: dict[str, str | None] = {}

    def problem(self, sample: Sample) -> str | None:
        """Why `sample` cannot be trained on, or None."""
        if self.max_prompt_tokens > 0:
            n = len(self.tokenizer(sample.question, add_special_tokens=False)["input_ids"])
            if n > self.max_prompt_tokens:
                return f"question has {n} tokens, more than data.max_prompt_tokens={self.max_prompt_tokens}"
        if "://" in sample.video:  # remote videos are fetched by the decoder; not probed here
            return None
        if sample.video not in self._probed:
            try:
                probe_video(sample.video)
                self._probed[sample.video] = None
            except (VideoError, OSError) as e:
                self._probed[sample.video] = f"video could not be decoded: {e}"
        return self._probed[sample.video]

    def screen(self, samples: list, step: int) -> list:
        """`samples` with bad ones replaced by good ones of the batch (skip) or a DataError naming the first bad."""
        if not samples or not all(isinstance(s, Sample) for s in samples):
            return samples  # M-DPO pairs and other step inputs are checked where they are built
        problems = [self.problem(s) for s in samples]
        bad = [i for i, p in enumerate(problems) if p]
        if not bad:
            return samples
        path = self._record(step, [(samples[i], problems[i]) for i in bad])
        if not self.skip:
            s, why = samples[bad[0]], problems[bad[0]]
            raise DataError(f"step {step + 1}: sample {s.id!r} ({sample_location(s)}): {why}; recorded in {path}. "
                            "Fix or remove it, or set data.skip_bad_samples=true to skip such samples")
        good = [s for i, s in enumerate(samples) if i not in bad]
        if not good:
            raise DataError(f"step {step + 1}: every sample of this process's batch is bad (see {path})")
        self.skipped += len(bad)
        for i in bad:
            logger.warning("step %d: skipped sample %r (%s): %s", step + 1, samples[i].id,
                           sample_location(samples[i]), problems[i])
        return [good[k % len(good)] if i in bad else s for k, (i, s) in enumerate(enumerate(samples))]

    def _record(self, step: int, found: list[tuple[Sample, str]]) -> Path:
        path = self.output_dir / "bad_steps" / f"step-{step + 1:06d}-rank{self.rank}-data.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            for s, why in found:
                f.write(json.dumps({"reason": why, "where": sample_location(s), "step": step + 1,
                                    "sample": s.to_dict()}, default=str) + "\n")
        return path
