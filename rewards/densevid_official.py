"""METEOR, CIDEr and localisation precision/recall as ActivityNet's `densevid_eval/evaluate.py` computes them.

rlvid's `dense_caption.caption_metric_many` follows the same recipe; the official script differs in
details this module reproduces: PTB-tokenised ASCII captions (not rlvid's normalisation), its IoU
(overlap / (min(hull, summed lengths) + 1e-8)), predictions in the order given (no sorting), and
every reference list of a video (val_1 and val_2): a prediction is paired with every reference
event of every list it overlaps by >= tIoU; precision and recall are each the best over the lists.
A prediction overlapping no reference is paired with a random string of 10-20 letters there and
with the fixed one-word `UNMATCHED_REFERENCE` here: both are one token no caption shares, so the
scores are the same (measured equal, docs/fidelity.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards.dense_caption import TIOUS, UNMATCHED_REFERENCE
from rewards.soda_official import _meteor, official_iou, ptb_tokenize
from rlvid.data.sample import Event


def _cider(hyps: Sequence[str], refs: Sequence[str]) -> float:
    from pycocoevalcap.cider.cider import Cider

    score, _ = Cider().compute_score({i: [r] for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})
    return float(score)


def caption_metrics_official(
    preds: Sequence[Sequence[Event]],
    references: Sequence[Sequence[Sequence[Event]]],
    scorers: Sequence[str] = ("meteor", "cider"),
    tious: Sequence[float] = TIOUS,
) -> dict[str, list[float]]:
    """Per video, each caption metric averaged over `tious` (keys "meteor", "cider"). A video with
    no prediction scores 0, as in the official script."""
    texts = [e.caption for p in preds for e in p] + [e.caption for refs in references for r in refs for e in r]
    tokens = iter(ptb_tokenize([*texts, UNMATCHED_REFERENCE]))
    pred_tok = [[next(tokens) for _ in p] for p in preds]
    ref_tok = [[[next(tokens) for _ in r] for r in refs] for refs in references]
    unmatched = next(tokens)

    groups: list[tuple[list[str], list[str]]] = []  # per (video, tIoU): hypotheses and references
    for p_events, p_tok, r_sets, r_tok in zip(preds, pred_tok, references, ref_tok, strict=True):
        for tiou in tious:
            hyps: list[str] = []
            refs: list[str] = []
            for p, hyp in zip(p_events, p_tok, strict=True):
                before = len(hyps)
                for r_events, r_words in zip(r_sets, r_tok, strict=True):
                    for g, ref in zip(r_events, r_words, strict=True):
                        if official_iou((p.start, p.end), (g.start, g.end)) >= tiou:
                            hyps.append(hyp)
                            refs.append(ref)
                if len(hyps) == before:
                    hyps.append(hyp)
                    refs.append(unmatched)
            groups.append((hyps, refs))
    out: dict[str, list[float]] = {}
    k = len(tious)
    for name in scorers:
        if name == "meteor":
            scores = _meteor().corpus_many(groups)
        elif name == "cider":
            scores = [_cider(h, r) if h else 0.0 for h, r in groups]
        else:
            raise ValueError(f"official caption metrics are 'meteor' and 'cider', got {name!r}")
        out[name] = [sum(scores[v * k : (v + 1) * k]) / k for v in range(len(preds))]
    return out


def localization_official(
    pred: Sequence[Event], references: Sequence[Sequence[Event]], tious: Sequence[float] = TIOUS
) -> tuple[float, float]:
    """(precision, recall) averaged over `tious`, each the best over the reference lists; a hit
    needs IoU > tIoU (strictly), as in `evaluate_detection`."""
    precision = recall = 0.0
    for tiou in tious:
        best_p = best_r = 0.0
        for ref in references:
            hit_p, hit_r = set(), set()
            for i, p in enumerate(pred):
                for j, g in enumerate(ref):
                    if official_iou((p.start, p.end), (g.start, g.end)) > tiou:
                        hit_p.add(i)
                        hit_r.add(j)
            if pred:
                best_p = max(best_p, len(hit_p) / len(pred))
            best_r = max(best_r, len(hit_r) / len(ref) if ref else 0.0)
        precision += best_p
        recall += best_r
    return precision / len(tious), recall / len(tious)
