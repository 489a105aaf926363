"""`format`: does the completion follow the `<think>...</think><answer>...</answer>` structure?

A format reward teaches the model where to put its answer, so the other rewards can find it.
String searches, not regexes: this runs on every rollout and completions can be long.
"""

from __future__ import annotations

from typing import Any

from rewards.columns import check_choice, column
from rewards.presets import FORMAT_PRESETS, check_preset, temporal_r1, time_r1, video_r1

MODES = ("strict", "lenient")
THINK = ("required", "optional", "forbidden")


def format_reward(
    completions: list[str],
    *,
    mode: str = "strict",
    think: str = "required",
    preset: str | None = None,
    task: list[str | None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when a completion has the expected structure, else 0.0 (applies to every task).

    mode="strict": the whole output (up to surrounding whitespace) is `<think>T</think>` then
    `<answer>A</answer>`, with one of each tag, only whitespace between them, T and A not empty.
    mode="lenient": a think block followed by an answer block appears somewhere; other text
    around them is allowed. think="optional" also accepts a bare answer block (and an empty think
    block); think="forbidden" requires the answer block and no think tag at all.
    `preset` reproduces a paper's format reward instead (rewards/presets; `mode` and `think` are
    then ignored): temporal_r1 (its JSON answer form on temporal_grounding samples), time_r1, video_r1.
    """
    validate_options(mode=mode, think=think, preset=preset)
    if preset == "temporal_r1":
        tasks = column(task, len(completions), "task")
        return [temporal_r1.format_score(c, t) for c, t in zip(completions, tasks, strict=True)]
    if preset == "time_r1":
        return [time_r1.format_score(c) for c in completions]
    if preset == "video_r1":
        return [video_r1.format_score(c) for c in completions]
    check = _strict if mode == "strict" else _lenient
    return [1.0 if check(c, think) else 0.0 for c in completions]


def validate_options(mode: str = "strict", think: str = "required", preset: str | None = None, **_: Any) -> None:
    """Fail at recipe load on a bad option value."""
    check_choice("mode", mode, MODES)
    check_choice("think", think, THINK)
    check_preset(preset, FORMAT_PRESETS)


format_reward.validate_options = validate_options  # type: ignore[attr-defined]


def _strict(text: str, think: str) -> bool:
    s = text.strip()
    if not s.endswith("</answer>") or s.count("<answer>") != 1 or s.count("</answer>") != 1:
        return False
    a = s.find("<answer>")
    if not s[a + 8 : -9].strip():
        return False
    head = s[:a].rstrip()
    n_open, n_close = s.count("<think>"), s.count("</think>")
    if not head:
        return think != "required" and n_open == 0 and n_close == 0
    if think == "forbidden" or n_open != 1 or n_close != 1:
        return False
    if not (head.startswith("<think>") and head.endswith("</think>")):
        return False
    return think == "optional" or bool(head[7:-8].strip())


def _lenient(text: str, think: str) -> bool:
    close = text.rfind("</answer>")
    if close == -1:
        return False
    open_ = text.rfind("<answer>", 0, close)
    if open_ == -1 or not text[open_ + 8 : close].strip():
        return False
    if think == "forbidden":
        return "<think>" not in text and "</think>" not in text
    t_close = text.rfind("</think>", 0, open_)
    if t_close == -1:
        return think == "optional" and "<think>" not in text
    t_open = text.rfind("<think>", 0, t_close)
    if t_open == -1:
        return False
    return think == "optional" or bool(text[t_open + 7 : t_close].strip())
