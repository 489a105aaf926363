#!/usr/bin/env python
"""Convert a public dataset's annotations to an rlvid JSONL file.

    python scripts/import_dataset.py charades_sta --annotations charades_sta_train.txt \\
        --durations Charades_v1_train.csv --video-dir Charades_v1 --out data/charades_train.jsonl

Video paths are written relative to the output file when the videos lie below its folder
(so the folder can move as a whole), and absolute otherwise; the loader resolves relative paths
against the JSONL's folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rlvid.data.importers import IMPORTERS, import_dataset
from rlvid.data.loaders import DataError, write_jsonl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=sorted(IMPORTERS))
    parser.add_argument("--annotations", required=True, help="the dataset's annotation file")
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--video-dir", help="folder holding the videos")
    parser.add_argument("--durations", help="charades_sta: Charades_v1_*.csv (id, length) or JSON {id: seconds}")
    parser.add_argument("--grounding", help="nextgqa: gsub_*.json")
    parser.add_argument("--video-map", help="nextgqa: map_vid_vidorID.json")
    parser.add_argument("--video-ext", help="video file extension (default .mp4)")
    parser.add_argument("--with-grounding", action="store_true",
                        help="activitynet_captions: also one temporal_grounding sample per sentence")
    parser.add_argument("--with-stream-events", action="store_true",
                        help="activitynet_captions: also one streaming narration sample per video (each caption "
                             "due at its event's end; docs/streaming.md)")
    parser.add_argument("--references", nargs="+",
                        help="activitynet_captions: more annotation files of the same videos (val_2.json beside "
                             "--annotations val_1.json): kept as reference_events for the official SODA_c")
    parser.add_argument("--solution-unit", choices=["fraction", "seconds"], help="temporal_r1: unit of solutions")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed records (counted in a warning)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    kwargs = {
        key: value
        for key, value in vars(args).items()
        if key not in ("format", "out") and value not in (None, False)
    }
    if "video_dir" in kwargs:
        kwargs["video_dir"] = _portable_dir(kwargs["video_dir"], out.parent)
    try:
        samples = import_dataset(args.format, **kwargs)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_jsonl(samples, out)
    print(f"wrote {len(samples)} {args.format} samples to {out}")
    return 0


def _portable_dir(video_dir: str, out_dir: Path) -> str:
    """`video_dir` relative to the output's folder if it lies inside it, else absolute."""
    video_dir, out_dir = os.path.abspath(video_dir), os.path.abspath(out_dir)
    if os.path.commonpath([video_dir, out_dir]) == out_dir:
        return os.path.relpath(video_dir, out_dir)
    return video_dir


if __name__ == "__main__":
    sys.exit(main())
