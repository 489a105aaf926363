"""SODA_c exactly as the official code computes it (fujiso/SODA `soda.py`, `--multi_reference`).

rlvid's `soda.soda_c` follows the paper; the published numbers come from the official script,
which differs in four ways that this module reproduces:
- captions are made ASCII (other characters become spaces) and PTB-tokenised with
  pycocoevalcap's Stanford tokenizer ("woman's" -> "woman 's", punctuation tokens dropped);
- METEOR is called with its arguments swapped: the ground-truth caption is scored as the
  hypothesis against the predicted caption as the reference (`calc_score_matrix`);
- IoU is intersection / (min(hull, sum of lengths) + 1e-8), and predictions are ordered by start
  time only (a stable sort), ground-truth events as given;
- with several reference event lists for a video (ActivityNet val_1 and val_2), each is scored
  and the one with the best F-measure counts (`--multi_reference`).
Needs Java (the tokenizer and METEOR are Java programs).
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards.captions import MeteorScorer
from rewards.soda import optimal_matching
from rlvid.data.sample import Event


def remove_nonascii(text: str) -> str:
    """Every non-ASCII character becomes a space (as the official preprocessing does)."""
    return "".join(c if ord(c) < 128 else " " for c in text)


def ptb_tokenize(captions: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTB tokenisation (lower case, punctuation tokens removed), in one Java call."""
    if not captions:
        return []
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({i: [{"caption": remove_nonascii(c)}] for i, c in enumerate(captions)})
    return [out[i][0] if i in out else "" for i in range(len(captions))]


def official_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """The official `utils.iou`: overlap / (min(hull, summed lengths) + 1e-8)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = min(max(a[1], b[1]) - min(a[0], b[0]), a[1] - a[0] + b[1] - b[0])
    return inter / (union + 1e-8)


class RawMeteorScorer(MeteorScorer):
    """METEOR on already-tokenised text, cleaned only as pycocoevalcap's `Meteor._stat` does
    ("|||" removed from the hypothesis, double spaces halved), not by rlvid's normalisation."""

    name = "meteor_raw"

    def _stats(self, hyps: Sequence[str], refs: Sequence[str]) -> list[str]:
        lines = [
            f"SCORE ||| {r} ||| {h.replace('|||', '').replace('  ', ' ')}" for h, r in zip(hyps, refs, strict=True)
        ]
        return self._exchange(lines, [1] * len(lines))


_METEOR: RawMeteorScorer | None = None


def _meteor() -> RawMeteorScorer:
    global _METEOR
    if _METEOR is None:
        _METEOR = RawMeteorScorer()
    return _METEOR


def soda_c_official(
    preds: Sequence[Sequence[Event]], references: Sequence[Sequence[Sequence[Event]]]
) -> list[dict[str, float]]:
    """Per video, the official SODA_c: `precision`, `recall`, `f` of the reference list with the
    best F-measure (first on ties). `references[k]` holds video k's reference event lists (one or
    more). A video without predictions or without references scores 0."""
    preds = [sorted(p, key=lambda e: e.start) for p in preds]
    texts = [e.caption for p in preds for e in p]
    texts += [e.caption for refs in references for ref in refs for e in ref]
    tokens = iter(ptb_tokenize(texts))
    pred_tok = [[next(tokens) for _ in p] for p in preds]
    ref_tok = [[[next(tokens) for _ in ref] for ref in refs] for refs in references]

    hyps, refs_for_meteor = [], []  # swapped as the official code: hypothesis = ground truth
    for p_tok, r_sets in zip(pred_tok, ref_tok, strict=True):
        for r_tok in r_sets:
            for g in r_tok:
                hyps += [g] * len(p_tok)
                refs_for_meteor += p_tok
    scores = iter(_meteor().pairs(hyps, refs_for_meteor) if hyps else [])

    out = []
    for p_events, r_sets in zip(preds, references, strict=True):
        best = {"precision": 0.0, "recall": 0.0, "f": 0.0}
        first = True
        for r_events in r_sets:
            weights = [[official_iou((p.start, p.end), (g.start, g.end)) * next(scores) for p in p_events]
                       for g in r_events]
            if not p_events or not r_events:
                continue
            total, _ = optimal_matching(weights)
            precision, recall = total / len(p_events), total / len(r_events)
            f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
            if first or f > best["f"]:
                best = {"precision": precision, "recall": recall, "f": f}
                first = False
        out.append(best)
    return out
