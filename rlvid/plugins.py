"""The one plugin loader: a user's function named in a recipe, found the same way for every kind.

Rewards, evaluation hooks, selection strategies and the algorithm registries (losses, advantage
and KL estimators, aggregation modes) accept, besides their own registered names:

- `package.module:function`, imported;
- `./path/file.py:function` (a module part ending in `.py` or holding a `/`), loaded from the
  file; a relative path is looked up from the recipe's folder, then the working folder;
- a name an installed package publishes in the kind's entry-point group (e.g. `rlvid.rewards`).

Failures raise `PluginError` (a ValueError) carrying the kind, the name and what went wrong, so
each caller re-raises its own typed error without reading messages.

A recipe that names code is a program: every file this loader executes or imports for a plugin is
recorded with its sha256 (`loaded_plugins()`), and `write_plugin_record` puts the list in the run
folder (`plugins.json`) so a run says which code it ran (docs/security.md).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("rlvid.plugins")

_LOADED: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, name, path) -> record
OWN_PACKAGE_NAMES = ("rewards", "data_selection")  # always rlvid's (rlvid/own_imports.py), never a user's file


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_loaded(kind: str, name: str, module: Any, source: str) -> None:
    """Remember the file behind a plugin `module` (path + sha256); modules without a file are recorded by name."""
    path = getattr(module, "__file__", None)
    path = str(Path(path).resolve()) if path else None
    key = (kind, name, path or "")
    if key in _LOADED:
        return
    record = {"kind": kind, "name": name, "source": source, "module": getattr(module, "__name__", None),
              "path": path, "sha256": file_sha256(path) if path and Path(path).is_file() else None}
    _LOADED[key] = record
    logger.info("plugin %s %r: %s sha256=%s", kind, name, path or record["module"], record["sha256"])


def loaded_plugins() -> list[dict[str, Any]]:
    """Every plugin loaded in this process so far: kind, name, source (file, module, entry point), path, sha256."""
    return [dict(r) for r in _LOADED.values()]


def write_plugin_record(path: str | Path) -> Path:
    """Write `loaded_plugins()` as JSON to `path` (a run folder's plugins.json) and log each file once more."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = loaded_plugins()
    path.write_text(json.dumps({"plugins": records}, indent=2) + "\n")
    for r in records:
        logger.info("run uses plugin %s %r from %s (sha256 %s)", r["kind"], r["name"], r["path"] or r["module"],
                    r["sha256"])
    return path


class PluginError(ValueError):
    """A plugin that cannot be found or loaded: `kind` (e.g. "reward"), `name`, and `detail` (why)."""

    def __init__(self, kind: str, name: str, detail: str):
        super().__init__(f"{kind} {name!r}: {detail}")
        self.kind, self.name, self.detail = kind, name, detail


def is_import_path(name: str) -> bool:
    """True for `pkg.mod:fn` and `./file.py:fn` names (as opposed to registered or entry-point names)."""
    return isinstance(name, str) and ":" in name


def load_module_file(path_part: str, base_dir: str | Path | None, name: str, kind: str = "plugin") -> Any:
    """Import `./file.py` (relative to `base_dir`, then the working directory) as a module, once per path."""
    raw = Path(path_part).expanduser()
    candidates = [raw] if raw.is_absolute() else [Path(base_dir) / raw] if base_dir else []
    if not raw.is_absolute():
        candidates.append(Path.cwd() / raw)
    path = next((c.resolve() for c in candidates if c.is_file()), None)
    if path is None:
        raise PluginError(kind, name, f"file not found; looked at {[str(c) for c in candidates]}")
    mod_name = f"rlvid_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if mod_name in sys.modules:
        record_loaded(kind, name, sys.modules[mod_name], "file")
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(kind, name, f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise PluginError(kind, name, f"importing {path} failed: {type(e).__name__}: {e}") from e
    record_loaded(kind, name, module, "file")
    return module


def load_import_path(name: str, base_dir: str | Path | None = None, kind: str = "plugin") -> Any:
    """The callable a `pkg.mod:fn` or `./file.py:fn` name refers to."""
    target, _, attr = name.rpartition(":")
    if not target or not attr:
        raise PluginError(kind, name, "expected 'package.module:function' or './file.py:function'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = load_module_file(target, base_dir, name, kind)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise PluginError(kind, name, f"cannot import module {target!r}: {e}") from e
        record_loaded(kind, name, module, "module")
    fn = getattr(module, attr, None)
    if fn is None:
        public = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        own = f"; {target!r} is rlvid's own package: name your file as ./{target}.py:{attr}" \
            if target in OWN_PACKAGE_NAMES else ""
        raise PluginError(kind, name, f"{target} has no function {attr!r} (it defines: {public}){own}")
    if not callable(fn):
        raise PluginError(kind, name, f"resolves to a {type(fn).__name__}, which is not callable")
    return fn


def entry_point_names(group: str) -> dict[str, str]:
    """Names published in an entry-point group, with what each points at."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=group)}


def load_entry_point(group: str, name: str, kind: str = "plugin") -> Any | None:
    """The object an installed package publishes as `name` in `group`; None when none does."""
    eps = [ep for ep in importlib.metadata.entry_points(group=group) if ep.name == name]
    if not eps:
        return None
    if len({ep.value for ep in eps}) > 1:
        raise PluginError(kind, name, f"several installed packages publish it: {[ep.value for ep in eps]}")
    try:
        obj = eps[0].load()
    except Exception as e:
        raise PluginError(kind, name, f"loading entry point {eps[0].value!r} failed: {type(e).__name__}: {e}") from e
    record_loaded(kind, name, sys.modules.get(eps[0].module), f"entry point {group}: {eps[0].value}")
    return obj
