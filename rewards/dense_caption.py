"""Dense-captioning scores (per video) and the `dense_caption` reward.

- tIoU-averaged caption metrics as the ActivityNet Captions evaluation defines them: at each tIoU
  threshold every predicted event is paired with every ground-truth event it overlaps at least
  that much (an event that overlaps none is paired with a nonsense reference, so it scores 0 and
  still counts), the scorer's corpus score over the video's pairs is taken, and the scores are
  averaged over the thresholds {0.3, 0.5, 0.7, 0.9}.
- Localisation precision / recall: the share of predicted events that overlap some ground-truth
  event by more than the threshold, and the share of ground-truth events some prediction overlaps
  by more than it (strictly more, as in the reference evaluation), averaged over the thresholds.
- SODA_c (see `rewards.soda`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards.captions import SCORER_NAMES, CaptionScorer, get_caption_scorer
from rewards.columns import check_choice, check_task, column
from rewards.events import as_events, parse_events
from rewards.iou import fix_interval, interval_iou
from rewards.parsing import extract_answer
from rewards.soda import soda_c_many
from rlvid.data.sample import Event

TIOUS = (0.3, 0.5, 0.7, 0.9)
METRICS = ("soda_c", "meteor", "cider", "precision", "recall")
UNMATCHED_REFERENCE = "qxzv"  # a reference no caption shares words with: unmatched predictions score 0


def _iou(a: Event, b: Event) -> float:
    return interval_iou((a.start, a.end), (b.start, b.end))


def caption_metric_many(
    preds: Sequence[Sequence[Event]],
    gts: Sequence[Sequence[Event]],
    scorer: str | CaptionScorer = "meteor",
    tious: Sequence[float] = TIOUS,
) -> list[float]:
    """Per video, the caption metric (METEOR, CIDEr, ...) averaged over tIoU thresholds; a video
    without predictions scores 0."""
    scorer = get_caption_scorer(scorer)
    groups: list[tuple[list[str], list[str]]] = []
    for p_events, g_events in zip(preds, gts, strict=True):
        for tiou in tious:
            hyps: list[str] = []
            refs: list[str] = []
            for p in p_events:
                matched = False
                for g in g_events:
                    if _iou(p, g) >= tiou:
                        hyps.append(p.caption)
                        refs.append(g.caption)
                        matched = True
                if not matched:
                    hyps.append(p.caption)
                    refs.append(UNMATCHED_REFERENCE)
            groups.append((hyps, refs))
    scores = scorer.corpus_many(groups)
    k = len(tious)
    return [sum(scores[v * k : (v + 1) * k]) / k for v in range(len(preds))]


def localization_pr(
    pred: Sequence[Event], gt: Sequence[Event], tious: Sequence[float] = TIOUS
) -> tuple[float, float]:
    """(precision, recall) of the predicted event boundaries, averaged over tIoU thresholds."""
    if not gt:
        raise ValueError("localisation recall needs at least one ground-truth event")
    precision = recall = 0.0
    for tiou in tious:
        hit_pred: set[int] = set()
        hit_gt: set[int] = set()
        for i, p in enumerate(pred):
            for j, g in enumerate(gt):
                if _iou(p, g) > tiou:
                    hit_pred.add(i)
                    hit_gt.add(j)
        precision += len(hit_pred) / len(pred) if pred else 0.0
        recall += len(hit_gt) / len(gt)
    return precision / len(tious), recall / len(tious)


def predicted_events(completion: str, duration: float | None = None, fractions: bool = False) -> list[Event]:
    """The events a completion predicts, reversed intervals swapped and clipped to the video."""
    out = []
    for ev in parse_events(extract_answer(completion), duration, fractions):
        s, e = fix_interval((ev.start, ev.end), duration, "swap", True)  # type: ignore[misc]
        out.append(Event(s, e, ev.caption))
    return out


def dense_caption_scores(
    preds: Sequence[Sequence[Event]],
    gts: Sequence[Sequence[Event]],
    metrics: Sequence[str] = ("soda_c",),
    caption_scorer: str | CaptionScorer = "meteor",
    tious: Sequence[float] = TIOUS,
) -> dict[str, list[float]]:
    """Per-video scores for each requested metric (names from METRICS)."""
    out: dict[str, list[float]] = {}
    for m in metrics:
        if m == "soda_c":
            out[m] = soda_c_many(preds, gts, caption_scorer)
        elif m in ("meteor", "cider"):
            out[m] = caption_metric_many(preds, gts, m, tious)
        elif m in ("precision", "recall"):
            pr = [localization_pr(p, g, tious) for p, g in zip(preds, gts, strict=True)]
            out[m] = [x[0] if m == "precision" else x[1] for x in pr]
        else:
            raise ValueError(f"unknown dense-caption metric {m!r}; allowed: {list(METRICS)}")
    return out


def dense_caption_reward(
    completions: list[str],
    *,
    events: Sequence[Any] | None = None,
    duration: Sequence[float | None] | None = None,
    task: Sequence[str | None] | None = None,
    metric: str | Sequence[str] = "soda_c",
    caption_scorer: str | CaptionScorer = "meteor",
    tious: Sequence[float] = TIOUS,
    fractions: bool = False,
    **kwargs: Any,
) -> list[float | None] | dict[str, list[float | None]]:
    """Dense-captioning quality of the predicted event list against the ground-truth `events`.

    `metric` is one name or a list of names from METRICS ("soda_c", "meteor", "cider",
    "precision", "recall"); a list returns a dict of named sub-scores. SODA_c weighs captions with
    `caption_scorer` ("meteor", "cider", "rouge_l" or a callable). None for samples without
    ground-truth events or of another task; an unparseable answer scores 0.
    """
    validate_options(metric=metric, caption_scorer=caption_scorer, tious=tious)
    names = [metric] if isinstance(metric, str) else list(metric)
    n = len(completions)
    ev_col, dur_col, task_col = column(events, n, "events"), column(duration, n, "duration"), column(task, n, "task")
    live, preds, gts = [], [], []
    for i, (c, ev, d, t) in enumerate(zip(completions, ev_col, dur_col, task_col, strict=True)):
        check_task(t)
        if not ev or (t is not None and t != "dense_caption"):
            continue
        live.append(i)
        preds.append(predicted_events(c, float(d) if d is not None else None, fractions))
        gts.append(as_events(ev))
    scores = dense_caption_scores(preds, gts, names, caption_scorer, tious) if live else {m: [] for m in names}
    out: dict[str, list[float | None]] = {}
    for m in names:
        col: list[float | None] = [None] * n
        for i, s in zip(live, scores[m], strict=True):
            col[i] = s
        out[m] = col
    return out[names[0]] if isinstance(metric, str) else out


def validate_options(
    metric: str | Sequence[str] = "soda_c",
    caption_scorer: str | CaptionScorer = "meteor",
    tious: Sequence[float] = TIOUS,
    **_: Any,
) -> None:
    """Fail at recipe load on a bad option value."""
    for m in [metric] if isinstance(metric, str) else list(metric):
        check_choice("metric", m, METRICS)
    if isinstance(caption_scorer, str):
        check_choice("caption_scorer", caption_scorer, SCORER_NAMES)
    if not tious or not all(isinstance(t, (int, float)) and 0.0 < t <= 1.0 for t in tious):
        raise ValueError(f"option 'tious' must be a non-empty list of thresholds in (0, 1], got {tious!r}")


dense_caption_reward.validate_options = validate_options  # type: ignore[attr-defined]
