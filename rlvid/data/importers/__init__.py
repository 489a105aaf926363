"""Importers: public dataset formats -> `Sample` lists (one module per format).

`import_dataset("charades_sta", annotations=..., durations=..., video_dir=...)` dispatches by
name; scripts/import_dataset.py is the command-line wrapper that writes the JSONL.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rlvid.data.importers.activitynet_captions import import_activitynet_captions
from rlvid.data.importers.charades_sta import import_charades_sta
from rlvid.data.importers.nextgqa import import_nextgqa
from rlvid.data.importers.temporal_r1 import import_temporal_r1
from rlvid.data.sample import Sample

IMPORTERS: dict[str, Callable[..., list[Sample]]] = {
    "charades_sta": import_charades_sta,
    "activitynet_captions": import_activitynet_captions,
    "nextgqa": import_nextgqa,
    "temporal_r1": import_temporal_r1,
}


def import_dataset(fmt: str, **paths: Any) -> list[Sample]:
    """Run the importer named `fmt` with its keyword arguments (paths and options)."""
    if fmt not in IMPORTERS:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {sorted(IMPORTERS)}")
    importer = IMPORTERS[fmt]
    params = inspect.signature(importer).parameters
    unknown = sorted(set(paths) - set(params))
    missing = sorted(
        name for name, p in params.items() if p.default is inspect.Parameter.empty and name not in paths
    )
    problems = []
    if unknown:
        problems.append(f"unexpected argument(s) {unknown}")
    if missing:
        problems.append(f"missing argument(s) {missing}")
    if problems:
        raise ValueError(f"{fmt}: {'; '.join(problems)}; it takes {list(params)}")
    return importer(**paths)


__all__ = ["IMPORTERS", "import_activitynet_captions", "import_charades_sta", "import_dataset", "import_nextgqa",
           "import_temporal_r1"]
