"""One prediction as a row of predictions.jsonl: the ground truth next to the completion and its own score.

`prediction_rows` scores each sample alone with `evaluate_completions` (its task's metrics: IoU for
grounding, accuracy for multiple choice, ...), so a person can sort the rows and read the failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlvid.data.sample import Sample
from rlvid.eval.metrics import evaluate_completions

TRUTH_FIELDS = ("answer", "options", "intervals", "events", "reference_events", "stream_events")


def ground_truth(sample: Sample) -> dict[str, Any]:
    """The sample's reference fields that are set (answer, options, intervals, events ...)."""
    record = sample.to_dict()
    return {k: record[k] for k in TRUTH_FIELDS if record.get(k) is not None}


def sample_scores(completion: str, sample: Sample, convention: str = "standard", dense: str = "rlvid"
                  ) -> dict[str, float]:
    """This completion's task metrics, computed on it alone (keys without the task prefix, no count)."""
    found = evaluate_completions([completion], [sample], convention=convention, dense=dense)
    return {k.split("/", 1)[1]: v for k, v in found.items() if not k.endswith("/count")}


def prediction_rows(samples: Sequence[Sample], completions: Sequence[str], convention: str = "standard",
                    dense: str = "rlvid") -> list[dict[str, Any]]:
    """id, task, question, ground truth, completion and per-sample `score` for each sample, in order."""
    rows = []
    for sample, completion in zip(samples, completions, strict=True):
        rows.append({"id": sample.id, "task": sample.task, "video": sample.video, "question": sample.question,
                     **ground_truth(sample), "completion": completion,
                     "score": sample_scores(completion, sample, convention, dense)})
    return rows
