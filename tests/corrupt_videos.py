"""Broken "videos" for the error-path tests of decoding and loading (test code, kept out of the package)."""

from __future__ import annotations

from pathlib import Path

from rlvid.data.synthetic import SceneObject, _Layout, _render, encode_mp4


def make_corrupt_videos(out_dir: str | Path) -> dict[str, Path]:
    """Write broken "videos" for error-path tests: missing, empty, truncated and not_video (all named *.mp4)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{kind}.mp4" for kind in ("missing", "empty", "truncated", "not_video")}
    paths["missing"].unlink(missing_ok=True)
    paths["empty"].write_bytes(b"")
    valid = out / "_valid_for_truncation.mp4"
    layout = _Layout.for_frame(64, 48)
    obj = SceneObject("red", "circle", 0, 16, (4, 4), (40, 4), "right")
    encode_mp4(valid, (_render([obj], i, layout) for i in range(16)), fps=8)
    data = valid.read_bytes()
    valid.unlink()
    paths["truncated"].write_bytes(data[: len(data) // 3])
    paths["not_video"].write_text("This is a text file, not a video.\n")
    return paths
