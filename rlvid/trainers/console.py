"""What a training run prints on the terminal: one log format, no line written onto the progress bar.

`configure_console(level)` (`trainer.log_level`) sends log records through `tqdm.write`, so a warning
lands above the progress bar instead of on its line, and quiets other libraries' chatter: accelerate's
per-checkpoint INFO lines (they name `.tmp-step-N` folders that are renamed a moment later), its
"Removed shared tensor" warning (tied embeddings, expected), the progress bars transformers draws while
loading and writing weights, and absl/wandb banners. `debug` shows all of it again. `write(text)` prints
a block (an evaluation table, the run summary) the same way.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
QUIET_LOGGERS = ("accelerate", "absl", "wandb", "urllib3", "httpx", "filelock", "PIL", "matplotlib")
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
DATE_FORMAT = "%H:%M:%S"


class TqdmHandler(logging.StreamHandler):
    """A stderr handler that writes through tqdm, so an open progress bar is redrawn below the message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


class DropExpected(logging.Filter):
    """Drops third-party messages that are expected and only alarm people."""

    NEEDLES = ("Removed shared tensor",)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.NEEDLES)


def configure_console(level: str = "info") -> None:
    """Root logging at `level` through `TqdmHandler`; other libraries at WARNING unless `level` is debug."""
    if level not in LEVELS:
        raise ValueError(f"trainer.log_level must be one of {sorted(LEVELS)}, got {level!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, TqdmHandler) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)  # ours from an earlier stage, or basicConfig's stderr handler
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    quiet = level != "debug"
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, LEVELS[level]) if quiet else logging.NOTSET)
    drop = [f for f in handler.filters if isinstance(f, DropExpected)]
    if quiet and not drop:
        handler.addFilter(DropExpected())
    if quiet:
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("ACCELERATE_LOG_LEVEL", "WARNING")
        _transformers_quiet()


def _transformers_quiet() -> None:
    """No 'Loading weights' / 'Writing model shards' bars and only transformers' warnings."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_warning()


def write(text: str) -> None:
    """Print a block of text to stdout above any open progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()
