"""A user's mistake (a bad recipe key, a missing file, an unknown plugin) reaches the console as one error line and
the fix, not as a traceback: what counts as such a mistake, and how the `rlvid` command reports it.

The messages raised inside rlvid already name the file, line or key and what is allowed there; a traceback only
buries them. `--debug` (or RLVID_DEBUG=1) prints the traceback as well. Under torchrun / accelerate every process
exits with status 2 and only rank 0 prints, so the error is read once.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from rlvid.redact import scrub_text

EXIT_USER_ERROR = 2  # what argparse uses for a bad command line
DEBUG_ENV = "RLVID_DEBUG"

# (module, class, the fix). Looked up in sys.modules rather than imported: an error type whose module was never
# imported cannot have been raised, and `rlvid --help` stays free of torch.
USER_ERRORS: tuple[tuple[str, str, str], ...] = (
    ("rlvid.config.errors", "RecipeError",
     "correct the recipe file, key or override named above; recipes/base.yaml describes every key"),
    ("rlvid.plugins", "PluginError",
     "name a registered function, package.module:function, or ./file.py:function next to the recipe"),
    ("rlvid.algos.registry", "UnknownNameError", "use one of the registered names listed above, or a plugin"),
    ("rlvid.data.loaders", "DataError", "correct the data named above; sample fields: rlvid/data/sample.py"),
    ("rlvid.data.sample", "SampleError", "correct the sample named above; its fields: rlvid/data/sample.py"),
    ("rlvid.data.video", "VideoError", "check the video file named above, or set data.skip_bad_samples: true"),
    ("rewards.errors", "RewardError", "check rewards.functions in the recipe; see rewards/README.md"),
    ("data_selection.strategies", "SelectionError", "check the selection settings; see data_selection/README.md"),
    ("rlvid.trainers.run_folder", "RunFolderError", "choose another trainer.output_dir, or set the option named above"),
    ("rlvid.rollout.collect", "ResumeMismatchError", "use a fresh output folder, or that folder's settings"),
    ("rlvid.rollout.vllm_import", "EngineNotAvailableError", "install vLLM (docs/vllm.md) or set rollout.engine: hf"),
    ("rlvid.safe_paths", "UnsafePathError", "use a plain file name"),
)
MISSING_PATH_FIX = "check the path; relative paths on the command line start from the working folder"


def fix_for(error: BaseException) -> str | None:
    """The fix to print when `error` is a user's mistake; None for anything else (a bug: show the traceback)."""
    for module, name, fix in USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(error, cls):
            return fix
    if isinstance(error, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return MISSING_PATH_FIX
    return None


def is_main_process() -> bool:
    """Rank 0, or a single process (torchrun and accelerate set RANK for each process they start)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def debug_requested(argv: list[str]) -> bool:
    """`--debug` anywhere on the command line, or RLVID_DEBUG set to something other than 0/false/empty."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def report(error: BaseException, fix: str, debug: bool, stream: TextIO | None = None) -> None:
    """Print `rlvid: error: MESSAGE` and the fix (after the traceback when `debug`)."""
    stream = stream or sys.stderr
    if debug:
        traceback.print_exception(error, file=stream)
    message = str(error) or type(error).__name__
    print(f"rlvid: error: {scrub_text(message)}", file=stream)
    print(f"  fix: {fix}" + ("" if debug else " (--debug shows the traceback)"), file=stream)
    stream.flush()


def run_command(command: Callable[[], int | None], debug: bool) -> int:
    """Run one CLI command; a user's mistake becomes its report and exit status 2, anything else propagates."""
    try:
        return int(command() or 0)
    except Exception as error:
        fix = fix_for(error)
        if fix is None:
            raise
        if is_main_process():
            report(error, fix, debug)
        return EXIT_USER_ERROR
