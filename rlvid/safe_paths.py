"""File names from untrusted text: nothing rlvid writes may leave its output folder.

Sample ids, task names, stage names and split names come from data files and command lines. When
one of them becomes part of a file name it goes through `safe_component` (one plain path
component: no separators, no `..`, no leading dot, bounded length, a short hash when anything was
changed so distinct names stay distinct); `inside` joins parts under a root and refuses a result
that resolves outside it (symlinks included).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@-]+")
MAX_COMPONENT = 96


class UnsafePathError(ValueError):
    """A path built from data that would land outside its root folder."""


def safe_component(text: object, max_len: int = MAX_COMPONENT) -> str:
    """`text` as one file-name component (e.g. `../../x` -> `x-<hash>`); plain names pass unchanged."""
    raw = str(text)
    cleaned = _UNSAFE.sub("_", raw).strip("._") or "_"
    if cleaned == raw and len(raw) <= max_len:
        return raw
    digest = hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: max_len - 9]}-{digest}"


def inside(root: str | Path, *parts: str | Path) -> Path:
    """`root / parts...`, refused with UnsafePathError when it resolves outside `root`."""
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise UnsafePathError(f"{Path(root).joinpath(*parts)} resolves to {path}, outside {base}")
    return path
