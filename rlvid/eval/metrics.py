"""Task metrics for evaluation hooks and `rlvid eval`: pure functions over predictions and ground truths.

Predictions may be raw completions (parsed exactly as the rewards parse them) or already
parsed values. All rates are fractions in [0, 1] (papers print them x100); CIDEr is on its own
scale. An unparseable prediction counts as wrong / IoU 0, never as skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from rewards.accuracy import score_answer, score_mcq
from rewards.captions import CaptionScorer
from rewards.dense_caption import TIOUS, caption_metric_many, localization_pr, predicted_events
from rewards.densevid_official import caption_metrics_official, localization_official
from rewards.events import as_events
from rewards.grounded_qa import predicted_intervals
from rewards.iou import union_iop, union_iou
from rewards.parsing import as_intervals, extract_answer
from rewards.soda import soda_c_many
from rewards.soda_official import soda_c_official
from rlvid.data.sample import Event, Sample
from rlvid.eval.conventions import check_convention, prediction_iou
from rlvid.eval.streaming_metrics import streaming_metrics

GROUNDING_THRESHOLDS = (0.3, 0.5, 0.7)
DENSE_MODES = ("rlvid", "official")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _durations(durations: Sequence[float | None] | None, n: int) -> Sequence[float | None]:
    if durations is None:
        return [None] * n
    if len(durations) != n:
        raise ValueError(f"{len(durations)} durations for {n} predictions")
    return durations


def _check_lengths(preds: Sequence[Any], gts: Sequence[Any]) -> None:
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")


def grounding_metrics(
    predictions: Sequence[str | Sequence[float] | None],
    ground_truths: Sequence[Sequence[Any]],
    durations: Sequence[float | None] | None = None,
    thresholds: Sequence[float] = GROUNDING_THRESHOLDS,
    fractions: bool = False,
    convention: str = "standard",
) -> dict[str, float]:
    """Temporal grounding: `R1@m` (share of predictions with IoU >= m) for each threshold, and `mIoU`.

    A prediction is a completion (its first interval is read) or a (start, end) pair; the ground
    truth of a sample is its list of intervals. `convention` (rlvid/eval/conventions.py):
    "standard" (default) equals Moment-DETR's `compute_mr_r1` and mIoU: predictions as written
    (reversed = 0, nothing clipped), the best ground-truth window counts, unparseable = 0;
    "training" swaps and clips as the temporal_iou reward does; "temporal_r1" reproduces
    Temporal-R1's evaluation pipeline, parsing included.
    """
    check_convention(convention)
    _check_lengths(predictions, ground_truths)
    durs = _durations(durations, len(predictions))
    ious = []
    for pred, gt, d in zip(predictions, ground_truths, durs, strict=True):
        ious.append(prediction_iou(pred, as_intervals(gt), d, convention, fractions))
    out = {f"R1@{m:g}": _mean([1.0 if x >= m else 0.0 for x in ious]) for m in thresholds}
    out["mIoU"] = _mean(ious)
    return out


def mcq_accuracy(
    predictions: Sequence[str], answers: Sequence[str], options: Sequence[Sequence[str] | None] | None = None
) -> float:
    """Share of multiple-choice answers whose chosen option is the answer letter."""
    _check_lengths(predictions, answers)
    opts = options if options is not None else [None] * len(answers)
    return _mean([score_mcq(extract_answer(p), a, o) for p, a, o in zip(predictions, answers, opts, strict=True)])


def grounded_qa_metrics(
    predictions: Sequence[str],
    answers: Sequence[str],
    ground_truths: Sequence[Sequence[Any]],
    options: Sequence[Sequence[str] | None] | None = None,
    durations: Sequence[float | None] | None = None,
    thresholds: Sequence[float] = (0.3, 0.5),
    open_metric: str = "exact",
) -> dict[str, float]:
    """Grounded QA (NExT-GQA style): `accuracy` of the answer; `mIoU` and `mIoP` of the union of
    the predicted intervals with the union of the ground truth; `IoU@m`, `IoP@m`; and
    `acc@GQA`, the share answered correctly with IoP >= 0.5."""
    _check_lengths(predictions, answers)
    _check_lengths(predictions, ground_truths)
    opts = options if options is not None else [None] * len(answers)
    durs = _durations(durations, len(predictions))
    accs, ious, iops = [], [], []
    for p, a, gt, o, d in zip(predictions, answers, ground_truths, opts, durs, strict=True):
        accs.append(score_answer(p, "grounded_qa", a, o, open_metric=open_metric) or 0.0)
        preds = predicted_intervals(p, d)
        gts = as_intervals(gt)
        ious.append(union_iou(preds, gts) if preds else 0.0)
        iops.append(union_iop(preds, gts) if preds else 0.0)
    out = {"accuracy": _mean(accs), "mIoU": _mean(ious), "mIoP": _mean(iops)}
    for m in thresholds:
        out[f"IoU@{m:g}"] = _mean([1.0 if x >= m else 0.0 for x in ious])
        out[f"IoP@{m:g}"] = _mean([1.0 if x >= m else 0.0 for x in iops])
    out["acc@GQA"] = _mean([1.0 if a >= 1.0 and x >= 0.5 else 0.0 for a, x in zip(accs, iops, strict=True)])
    return out


def dense_caption_metrics(
    predictions: Sequence[str | Sequence[Event]],
    ground_truths: Sequence[Sequence[Any]],
    durations: Sequence[float | None] | None = None,
    tious: Sequence[float] = TIOUS,
    caption_scorers: Sequence[str | CaptionScorer] = ("meteor", "cider"),
    soda_scorer: str | CaptionScorer | None = "meteor",
    fractions: bool = False,
    dense: str = "rlvid",
    references: Sequence[Sequence[Sequence[Any]] | None] | None = None,
) -> dict[str, float]:
    """Dense captioning, averaged over videos: `SODA_c` (with `soda_scorer`), each caption
    metric averaged over the tIoU thresholds (`METEOR`, `CIDEr`), and localisation `precision`,
    `recall` and their harmonic mean `F1` (precision and recall averaged over thresholds first).
    A prediction is a completion (its events are parsed) or a list of events.
    `dense="official"` reproduces the official scripts instead of rlvid's own reading: SODA_c as
    fujiso/SODA computes it (rewards/soda_official.py), METEOR, CIDEr, precision and recall as
    ActivityNet's densevid_eval does (rewards/densevid_official.py); both use every reference
    list of a video (the ground truth plus its `references`, e.g. val_2 beside val_1)."""
    _check_lengths(predictions, ground_truths)
    durs = _durations(durations, len(predictions))
    preds = [
        predicted_events(p, d, fractions) if isinstance(p, str) else as_events(p)
        for p, d in zip(predictions, durs, strict=True)
    ]
    gts = [as_events(g) for g in ground_truths]
    out: dict[str, float] = {}
    if dense not in DENSE_MODES:
        raise ValueError(f"unknown dense {dense!r}; allowed: {list(DENSE_MODES)}")
    if dense == "official":
        refs = references if references is not None else [None] * len(gts)
        _check_lengths(predictions, refs)
        sets = [[g, *[as_events(r) for r in (more or [])]] for g, more in zip(gts, refs, strict=True)]
        return _dense_official(preds, sets, tious, caption_scorers, soda_scorer is not None)
    if soda_scorer is not None:
        out["SODA_c"] = _mean(soda_c_many(preds, gts, soda_scorer))
    for scorer in caption_scorers:
        name = scorer if isinstance(scorer, str) else scorer.name
        key = {"meteor": "METEOR", "cider": "CIDEr", "rouge_l": "ROUGE_L"}.get(name, name)
        out[key] = _mean(caption_metric_many(preds, gts, scorer, tious))
    pr = [localization_pr(p, g, tious) for p, g in zip(preds, gts, strict=True)]
    return _with_pr(out, pr)


def _with_pr(out: dict[str, float], pr: list[tuple[float, float]]) -> dict[str, float]:
    precision, recall = _mean([x[0] for x in pr]), _mean([x[1] for x in pr])
    out["precision"], out["recall"] = precision, recall
    out["F1"] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return out


def _dense_official(preds: list[list[Event]], sets: list[list[list[Event]]], tious: Sequence[float],
                    caption_scorers: Sequence[Any], with_soda: bool) -> dict[str, float]:
    """The official scripts' numbers (fujiso/SODA, densevid_eval) over all reference lists."""
    out: dict[str, float] = {}
    if with_soda:
        out["SODA_c"] = _mean([x["f"] for x in soda_c_official(preds, sets)])
    names = [s if isinstance(s, str) else s.name for s in caption_scorers]
    per_video = caption_metrics_official(preds, sets, names, tious) if names else {}
    for name, values in per_video.items():
        out[{"meteor": "METEOR", "cider": "CIDEr"}[name]] = _mean(values)
    return _with_pr(out, [localization_official(p, s, tious) for p, s in zip(preds, sets, strict=True)])


def evaluate_completions(
    completions: Sequence[str],
    samples: Sequence[Sample | Mapping[str, Any]],
    convention: str = "standard",
    dense: str = "rlvid",
    stream_tolerance: float = 1.0,
    **dense_kwargs: Any,
) -> dict[str, float]:
    """Every applicable metric for a mixed set of samples, keyed `task/metric`, plus `task/count`.

    mcq: `accuracy`; numeric and open_qa: `accuracy` as the `accuracy` reward scores it (exact
    number, ROUGE-L); temporal_grounding: R1@{0.3,0.5,0.7}, mIoU; grounded_qa and dense_caption as
    in their functions above (`dense_kwargs` go to `dense_caption_metrics`); `convention` is the
    grounding convention of `grounding_metrics`, `dense` that of `dense_caption_metrics` (rlvid | official).
    Streaming samples (with `stream_events`; their completions are transcripts) are reported apart, as
    `stream/<metric>` of `streaming_metrics` (on time: within `stream_tolerance` seconds), not under their task."""
    _check_lengths(completions, samples)
    by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for c, s in zip(completions, samples, strict=True):
        rec = s.to_dict() if isinstance(s, Sample) else dict(s)
        by_task["stream" if rec.get("stream_events") else rec["task"]].append((c, rec))
    out: dict[str, float] = {}
    streams = by_task.pop("stream", [])
    if streams:
        found = streaming_metrics([c for c, _ in streams], [r for _, r in streams], tolerance=stream_tolerance)
        out.update({f"stream/{k}": v for k, v in found.items()})
        out["stream/count"] = float(len(streams))
    for task, items in sorted(by_task.items()):
        cs = [c for c, _ in items]
        recs = [r for _, r in items]
        durs = [r.get("duration") for r in recs]
        if task == "temporal_grounding":
            found = grounding_metrics(cs, [r["intervals"] for r in recs], durs, convention=convention)
        elif task == "grounded_qa":
            found = grounded_qa_metrics(
                cs, [r["answer"] for r in recs], [r["intervals"] for r in recs], [r.get("options") for r in recs], durs
            )
        elif task == "dense_caption":
            found = dense_caption_metrics(cs, [r["events"] for r in recs], durs,
                                          dense=dense, references=[r.get("reference_events") for r in recs],
                                          **dense_kwargs)
        else:
            scores = [score_answer(c, task, r.get("answer"), r.get("options")) for c, r in items]
            found = {"accuracy": _mean([x or 0.0 for x in scores])}
        out.update({f"{task}/{k}": v for k, v in found.items()})
        out[f"{task}/count"] = float(len(items))
    return out
