"""`preset: video_r1`: Video-R1's training rewards (tulerfeng/Video-R1, `src/r1-v/src/open_r1/grpo.py`).

accuracy, by the sample's problem type (`meta.problem_type` when the sample has one, as in
Video-R1-260k; otherwise from the task: mcq -> "multiple choice", numeric -> "numerical",
open_qa -> "free-form"). The answer is the first `<answer>` block without surrounding whitespace
("" when there is none); so is the ground truth, when it is written with tags.
- multiple choice: 1 when the answer equals the ground truth exactly ("B" vs "B"; "(B)" is wrong).
- numerical: 0 when exactly one of the two contains "." or ","; else both are read with float()
  after removing commas, and 1 when they are equal rounded to 2 decimals.
- OCR: 1 - word error rate (word-level edit distance / reference words), clipped to [0, 1].
- free-form: mean of ROUGE-1, ROUGE-2 and ROUGE-L F (rouge-score, Porter stemmer).
- regression: 1 - relative error, (|pred - gt| + 1e-9) / (|gt| + 1e-9) clipped to [0, 1]. Not the
  MRA of Video-R1's evaluation (rlvid's `numeric: mra`). Quirk kept: an answer float() reads as
  NaN ("nan") scores 1, because the clip max(0, NaN) gives 0.
- any other problem type, and any failure: 0.
format: `format_reward`: the completion (not stripped) is `<think>...</think>` `<answer>...</answer>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewards.presets.tags import first_answer_trimmed, think_answer_format

TASK_PROBLEM_TYPES = {"mcq": "multiple choice", "numeric": "numerical", "open_qa": "free-form"}
_rouge = None


def format_score(text: str) -> float:
    """Video-R1's format reward."""
    return think_answer_format(text)


def problem_type(task: str | None, meta: Mapping[str, Any] | None, options: Any = None) -> str | None:
    """The Video-R1 problem type of a sample: meta.problem_type, else from the task."""
    if isinstance(meta, Mapping) and isinstance(meta.get("problem_type"), str):
        return meta["problem_type"]
    if task == "grounded_qa":
        return "multiple choice" if options else "free-form"
    return TASK_PROBLEM_TYPES.get(task or "")


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the number of reference words (at least 1)."""
    ref, hyp = reference.split(), hypothesis.split()
    prev = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        row = [i] + [0] * len(hyp)
        for j in range(1, len(hyp) + 1):
            if ref[i - 1] == hyp[j - 1]:
                row[j] = prev[j - 1]
            else:
                row[j] = 1 + min(prev[j], row[j - 1], prev[j - 1])
        prev = row
    return prev[len(hyp)] / max(1, len(ref))


def rouge_mean(reference: str, hypothesis: str) -> float:
    """Mean F of ROUGE-1, ROUGE-2, ROUGE-L with stemming (rouge-score)."""
    global _rouge
    if _rouge is None:
        from rouge_score.rouge_scorer import RougeScorer

        _rouge = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    s = _rouge.score(reference, hypothesis)
    return (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3


def _score(output: str, gt: str, kind: str) -> float:
    if kind == "multiple choice":
        return 1.0 if output.strip() == gt.strip() else 0.0
    if kind == "numerical":
        if ("." in gt or "," in gt) != ("." in output or "," in output):
            return 0.0
        return 1.0 if round(_number(gt), 2) == round(_number(output), 2) else 0.0
    if kind == "OCR":
        return max(0.0, min(1.0, 1 - word_error_rate(gt, output)))
    if kind == "free-form":
        return max(0.0, min(1.0, rouge_mean(gt, output)))
    if kind == "regression":
        g, o = _number(gt), _number(output)
        rel = min(1.0, max(0.0, (abs(o - g) + 1e-9) / (abs(g) + 1e-9)))
        return 1 - rel
    return 0.0


def accuracy_score(text: str, answer: str, kind: str) -> float:
    """Video-R1's accuracy reward of one completion for problem type `kind` (see the module doc)."""
    try:
        gt = first_answer_trimmed(answer if "<answer>" in answer else f"<answer>{answer}</answer>")
        return float(_score(first_answer_trimmed(text), gt, kind))
    except Exception:  # the reference scores every failure 0
        return 0.0
