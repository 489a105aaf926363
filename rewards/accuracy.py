"""`accuracy`: is the answer right? Multiple choice, numeric, and open-ended answers.

The task column picks the scorer (mcq, numeric, open_qa, and the answer part of grounded_qa);
samples of tasks that have no textual answer (temporal_grounding, dense_caption) get None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rewards.columns import check_choice, check_task, column
from rewards.parsing import extract_answer, normalize_text, parse_number, parse_option, strip_intervals
from rewards.presets import ACCURACY_PRESETS, check_preset, temporal_r1, video_r1

NUMERIC_MODES = ("tolerance", "mra")
OPEN_METRICS = ("exact", "rouge_l")
ANSWER_TASKS = ("mcq", "numeric", "open_qa", "grounded_qa")

# 1 - theta for theta in {0.50, 0.55, ..., 0.95}, written exactly (VSI-Bench / Video-R1 MRA).
_MRA_TOLERANCES = tuple((10 - k) / 20 for k in range(10))
_rouge = None


def mean_relative_accuracy(pred: float, gt: float) -> float:
    """Mean over confidence thresholds theta in {0.50, ..., 0.95} of [|pred - gt| / |gt| < 1 - theta]:
    partial credit for near misses on numeric answers. This is the MRA of VSI-Bench, which Video-R1
    reports in its evaluation; Video-R1's *training* reward for regression is 1 - relative error
    instead (`preset: video_r1`, rewards/presets/video_r1.py)."""
    if gt == 0.0:
        err = 0.0 if pred == 0.0 else math.inf
    else:
        err = abs(pred - gt) / abs(gt)
    return sum(1 for t in _MRA_TOLERANCES if err < t) / len(_MRA_TOLERANCES)


def score_numeric(text: str, gt: str | float, mode: str = "tolerance", rel_tol: float = 0.0) -> float:
    """1.0 when the answer's number is within `rel_tol` of the ground truth (relative; 0 means
    equal), or its mean relative accuracy with mode="mra". Unparseable (answer or ground truth,
    e.g. a ground truth the parser cannot read): 0, never an exception."""
    pred = parse_number(text)
    target = gt if isinstance(gt, (int, float)) else parse_number(str(gt))  # "4,144" -> 4144.0
    if pred is None or target is None or not math.isfinite(target) or not math.isfinite(pred):
        return 0.0
    if mode == "mra":
        return mean_relative_accuracy(pred, target)
    return 1.0 if abs(pred - target) <= rel_tol * abs(target) + 1e-9 else 0.0


def gt_letter(answer: str, options: Sequence[str] | None) -> str | None:
    """The ground-truth option letter (the schema stores a letter; `(B)` or the option text work too)."""
    a = answer.strip()
    if len(a) == 1:
        return a.upper()
    return parse_option(a, options)


def score_mcq(text: str, answer: str, options: Sequence[str] | None) -> float:
    """1.0 when the chosen option (see `parse_option`) is the ground-truth letter."""
    letter = parse_option(text, options)
    return 1.0 if letter is not None and letter == gt_letter(answer, options) else 0.0


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure by rouge-score (no stemming)."""
    global _rouge
    if _rouge is None:
        from rouge_score.rouge_scorer import RougeScorer

        _rouge = RougeScorer(["rougeL"], use_stemmer=False)
    return float(_rouge.score(reference, prediction)["rougeL"].fmeasure)  # rouge-score gives int 0 for no tokens


def score_open(text: str, answer: str, metric: str = "rouge_l") -> float:
    """Normalised exact match (metric="exact") or ROUGE-L F (metric="rouge_l") of a free-text answer."""
    pred, gt = normalize_text(text), normalize_text(answer)
    if pred == gt:
        return 1.0 if gt else 0.0
    if metric == "exact" or not pred:
        return 0.0
    return rouge_l(text, answer)


def infer_task(answer: str | None, options: Sequence[str] | None) -> str:
    """The task of a sample without a task column: options mean mcq, a number means numeric."""
    if options:
        return "mcq"
    if answer is not None:
        try:
            float(answer.strip().replace(",", ""))
        except ValueError:
            return "open_qa"
        return "numeric"
    return "open_qa"


def score_answer(
    completion: str,
    task: str | None,
    answer: str | None,
    options: Sequence[str] | None = None,
    *,
    numeric: str = "tolerance",
    rel_tol: float = 0.0,
    open_metric: str = "rouge_l",
) -> float | None:
    """Score one completion's answer against the ground truth; None when not applicable."""
    if answer is None:
        return None
    if not isinstance(answer, str):
        answer = str(answer)  # e.g. a numeric answer stored as a number
    if task is None:
        task = infer_task(answer, options)
    if task not in ANSWER_TASKS:
        return None
    text = extract_answer(completion)
    if task == "grounded_qa":
        text = strip_intervals(text)
        if options:
            return score_mcq(text, answer, options)
        if infer_task(answer, None) == "numeric":
            return score_numeric(text, answer, numeric, rel_tol)
        return score_open(text, answer, open_metric)
    if task == "mcq":
        return score_mcq(text, answer, options)
    if task == "numeric":
        return score_numeric(text, answer, numeric, rel_tol)
    return score_open(text, answer, open_metric)


def accuracy_reward(
    completions: list[str],
    *,
    task: Sequence[str | None] | None = None,
    answer: Sequence[str | None] | None = None,
    options: Sequence[Sequence[str] | None] | None = None,
    numeric: str = "tolerance",
    rel_tol: float = 0.0,
    open_metric: str = "rouge_l",
    preset: str | None = None,
    meta: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Answer correctness in [0, 1], dispatched on the sample's task.

    mcq: the option letter (or option text) chosen equals the answer letter. numeric: within
    relative tolerance `rel_tol` (numeric="tolerance", default exact), or Video-R1's mean relative
    accuracy (numeric="mra"). open_qa: ROUGE-L F (open_metric="rouge_l") or normalised exact match
    ("exact"). grounded_qa: the answer part, scored as mcq when options exist, else as open_qa.
    Without a task column the task is inferred (options: mcq; numeric answer: numeric; else open).
    `preset` reproduces a paper's accuracy reward exactly instead (the other options are then
    ignored): temporal_r1 (R1-V's mathruler grading) or video_r1 (Video-R1's reward per problem
    type, from `meta.problem_type` or the task); see rewards/presets.
    """
    validate_options(numeric=numeric, rel_tol=rel_tol, open_metric=open_metric, preset=preset)
    n = len(completions)
    tasks, answers, opts = column(task, n, "task"), column(answer, n, "answer"), column(options, n, "options")
    metas = column(meta, n, "meta")
    out: list[float | None] = []
    for c, t, a, o, m in zip(completions, tasks, answers, opts, metas, strict=True):
        check_task(t)
        if preset is not None:
            out.append(_preset_score(preset, c, t, a, o, m))
        else:
            out.append(score_answer(c, t, a, o, numeric=numeric, rel_tol=rel_tol, open_metric=open_metric))
    return out


def _preset_score(preset: str, completion: str, task: str | None, answer: Any, options: Any, meta: Any) -> float | None:
    if answer is None:
        return None
    answer = answer if isinstance(answer, str) else str(answer)
    if task is None:
        task = infer_task(answer, options)
    if task not in ANSWER_TASKS:
        return None
    if preset == "temporal_r1":
        return temporal_r1.accuracy_score(completion, answer)
    kind = video_r1.problem_type(task, meta, options)
    return video_r1.accuracy_score(completion, answer, kind) if kind is not None else None


def validate_options(
    numeric: str = "tolerance",
    rel_tol: float = 0.0,
    open_metric: str = "rouge_l",
    preset: str | None = None,
    **_: Any,
) -> None:
    """Fail at recipe load on a bad option value."""
    check_preset(preset, ACCURACY_PRESETS)
    if preset == "temporal_r1":
        try:
            temporal_r1.require_grader()
        except ImportError as e:
            raise ValueError(str(e)) from e
    check_choice("numeric", numeric, NUMERIC_MODES)
    check_choice("open_metric", open_metric, OPEN_METRICS)
    if not (isinstance(rel_tol, (int, float)) and 0.0 <= rel_tol < math.inf):
        raise ValueError(f"option 'rel_tol' must be a finite number >= 0, got {rel_tol!r}")


accuracy_reward.validate_options = validate_options  # type: ignore[attr-defined]
