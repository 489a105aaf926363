"""rlvid's own top-level packages (`rewards`, `data_selection`) come from rlvid's install, never from a user's file.

`python -m rlvid`, `torchrun -m rlvid` and `accelerate launch -m rlvid` put the working folder first on
`sys.path`, so a user's `rewards.py` there would be imported as the package `rewards` and the first
`import rewards.accuracy` would fail ("'rewards' is not a package"). `import rlvid` installs a
meta-path finder, ahead of the path-based ones, that resolves exactly these names to the folders next
to rlvid's own: the repository for a checkout or an editable install, site-packages for a wheel.
Everything else imports as usual; a user's reward file still loads as a plugin (`./rewards.py:fn`)
under a name of its own (rlvid.plugins).
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

OWN_PACKAGES = ("rewards", "data_selection")


def project_roots() -> list[Path]:
    """Folders that hold rlvid/ next to rewards/ and data_selection/: as imported, then with symlinks resolved."""
    here = Path(__file__).parent.parent
    return list(dict.fromkeys([here, here.resolve()]))


class OwnPackageFinder:
    """Finds `rewards` and `data_selection` next to rlvid; declines every other name."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in OWN_PACKAGES:
            return None
        for root in project_roots():
            spec = importlib.machinery.PathFinder.find_spec(fullname, [str(root)])
            if spec is not None and spec.submodule_search_locations is not None:
                return spec
        return None  # an install that keeps them elsewhere: the usual search decides

    def invalidate_caches(self) -> None:
        """Nothing cached here (importlib.invalidate_caches calls this on every finder)."""


def is_own(module) -> bool:
    """True when an imported module `rewards` / `data_selection` is the package next to rlvid."""
    places = list(getattr(module, "__path__", None) or []) or [getattr(module, "__file__", None) or ""]
    own = {(root / module.__name__).resolve() for root in project_roots()}
    return any(p and Path(p).resolve() in own for p in places)


def install() -> None:
    """Put the finder first on `sys.meta_path` (once); refuse a same-named module that is already imported."""
    if not any(isinstance(f, OwnPackageFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, OwnPackageFinder())
    for name in OWN_PACKAGES:
        module = sys.modules.get(name)
        if module is not None and not is_own(module):
            where = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
            raise ImportError(f"a module named {name!r} ({where}) was imported before rlvid and hides rlvid's own "
                              f"{name!r} package: import rlvid first, or rename that module")
