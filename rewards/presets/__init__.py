"""Presets: rewards that reproduce a paper's reference implementation exactly, quirks included.

A builtin reward given `preset: NAME` scores with these functions instead of rlvid's own parsers,
so a recipe reproducing a paper trains on the numbers the paper trained on. Each module names the
reference (repository, file, function) it follows; docs/fidelity.md lists what each does with
every answer form. The default (no preset) stays rlvid's own, more lenient behaviour.
"""

from __future__ import annotations

PRESETS = ("temporal_r1", "time_r1", "video_r1")
FORMAT_PRESETS = PRESETS
IOU_PRESETS = ("temporal_r1", "time_r1")
ACCURACY_PRESETS = ("temporal_r1", "video_r1")


def check_preset(value: object, allowed: tuple[str, ...]) -> None:
    """Raise a ValueError naming the option when `value` is not None or one of `allowed`."""
    if value is not None and value not in allowed:
        raise ValueError(f"option 'preset' is {value!r}; allowed: {list(allowed)} (or unset for rlvid's own)")
