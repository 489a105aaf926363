"""Secrets never land in what rlvid writes: every writer passes its record through `scrub`.

A secret is the value of a known credential variable (`SECRET_ENV_VARS`: wandb, Hugging Face,
OpenAI, Anthropic, ...) or of a variable a recipe lists in `logging.secret_env`, read from the
environment when scrubbing (so a token exported after the recipe loaded is still caught). Any
occurrence of such a value in a string, a dict key or value, or a list item becomes
`<redacted:NAME>`. Values shorter than `MIN_SECRET_LENGTH` are ignored: redacting "1" everywhere
would destroy the record and protects nothing.

Writers: the saved recipe (`config/loading.py`), metrics.jsonl and wandb's run config
(`trainers/logging.py`), bad_steps dumps (`trainers/loop.py`), hook outputs (`trainers/hooks.py`),
`rlvid eval` outputs (`app/eval.py`) and log records (`install_log_filter`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

SECRET_ENV_VARS: tuple[str, ...] = (
    "WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "AZURE_OPENAI_API_KEY", "VLLM_API_KEY",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "COMET_API_KEY", "NEPTUNE_API_TOKEN",
)
MIN_SECRET_LENGTH = 8

_extra_names: set[str] = set()


def watch_env(names: Iterable[str]) -> None:
    """Treat the values of these environment variables as secrets too (a recipe's `logging.secret_env`)."""
    _extra_names.update(str(n) for n in names if n)


def secret_values(extra: Iterable[str] = ()) -> dict[str, str]:
    """value -> variable name, for every known or watched variable set to a long enough value (longest first)."""
    names = [*SECRET_ENV_VARS, *sorted(_extra_names), *extra]
    found = {}
    for name in names:
        value = os.environ.get(name)
        if value and len(value) >= MIN_SECRET_LENGTH:
            found.setdefault(value, name)
    return dict(sorted(found.items(), key=lambda kv: -len(kv[0])))


def scrub_text(text: str, values: dict[str, str] | None = None, marker: str = "<redacted:{name}>") -> str:
    """`text` with every secret value replaced by `marker` (e.g. `<redacted:HF_TOKEN>`)."""
    for value, name in (secret_values() if values is None else values).items():
        if value in text:
            text = text.replace(value, marker.format(name=name))
    return text


def scrub(obj: Any, extra: Iterable[str] = ()) -> Any:
    """A copy of `obj` (nested dicts, lists, tuples, strings) with secret values redacted; other values as they are."""
    values = secret_values(extra)
    return _scrub(obj, values) if values else obj


def _scrub(obj: Any, values: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return scrub_text(obj, values)
    if isinstance(obj, dict):
        return {_scrub(k, values): _scrub(v, values) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_scrub(v, values) for v in obj)
    return obj


class RedactFilter(logging.Filter):
    """A logging filter that formats each record's message and redacts secrets from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = secret_values()
        if values:
            record.msg = scrub_text(record.getMessage(), values)
            record.args = ()
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add `RedactFilter` to every handler of `logger` (default: the root logger), once each."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
