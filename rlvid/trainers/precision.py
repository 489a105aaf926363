"""Which mixed precision a run uses: `trainer.precision` against the launcher's `mixed_precision`, one rule.

`accelerate launch` passes the config file's (or `--mixed_precision`'s) value to every process as
ACCELERATE_MIXED_PRECISION, writing `no` when neither sets one, so a launcher's `no` cannot be told from
"not asked" and counts as not asked; torchrun and plain python pass nothing. The rule:

- an explicit `trainer.precision` (`no`, `bf16`, `fp16`) is used; a launcher asking for a different
  bf16/fp16 is overridden, with a warning naming both;
- `auto` takes the launcher's bf16/fp16 on a GPU machine, else bf16; on a machine without CUDA it is
  `no` (fp32), and a launcher asking for bf16/fp16 gets a warning saying it is not used.
"""

from __future__ import annotations

import os

LAUNCHER_ENV = "ACCELERATE_MIXED_PRECISION"


def launcher_precision() -> str | None:
    """The mixed precision `accelerate launch` asked for: bf16, fp16 (fp8), or None (not launched by accelerate,
    or its default `no`)."""
    value = os.environ.get(LAUNCHER_ENV, "").strip().lower()
    return None if value in ("", "no") else value


def resolve_precision(setting: str, launcher: str | None, on_gpu: bool) -> tuple[str, str | None]:
    """(the precision to use, a warning to log or None) for `trainer.precision` = `setting`."""
    if setting != "auto":
        if launcher is not None and launcher != setting:
            return setting, (f"trainer.precision={setting} overrides mixed_precision={launcher} from the accelerate "
                             "config / --mixed_precision (set trainer.precision: auto to follow the launcher)")
        return setting, None
    if not on_gpu:
        if launcher not in (None, "no"):
            return "no", (f"mixed_precision={launcher} from the accelerate config / --mixed_precision is not used "
                          "without a GPU: trainer.precision: auto trains in fp32 on CPU (set trainer.precision "
                          f"to {launcher} to force it)")
        return "no", None
    return launcher or "bf16", None
