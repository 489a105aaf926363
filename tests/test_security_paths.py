"""Names from data never climb out of the folder rlvid writes into (the full-run check is in test_security_run)."""

from __future__ import annotations

import json

import pytest

from rlvid.safe_paths import UnsafePathError, inside, safe_component


@pytest.mark.parametrize("hostile", ["../../x", "/etc/passwd", "..", ".", "", "a/../../b", "C:\\x\\..\\y",
                                     "x\x00y", ".hidden", "é" * 300])
def test_safe_component_is_one_plain_name(hostile, tmp_path):
    name = safe_component(hostile)
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".") and len(name) <= 96
    assert inside(tmp_path, name).parent == tmp_path.resolve()


def test_plain_names_are_kept_and_changed_ones_stay_distinct():
    assert safe_component("step-000010_rank0.jsonl") == "step-000010_rank0.jsonl"
    assert safe_component("../a") != safe_component("/a")


def test_inside_refuses_escapes_and_symlinks_out(tmp_path):
    assert inside(tmp_path, "a", "b.json") == tmp_path.resolve() / "a" / "b.json"
    with pytest.raises(UnsafePathError, match="outside"):
        inside(tmp_path / "run", "..", "x")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError):
        inside(tmp_path / "run", "link", "x")


def test_plot_stage_names_from_metrics_stay_in_the_plots_folder(tmp_path):
    from rlvid.plot import plot_run

    run = tmp_path / "a" / "run"
    run.mkdir(parents=True)
    lines = [{"step": s, "stage": "../../../pwn", "loss": 1.0 / s} for s in (1, 2)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    written = plot_run(run)
    assert written and all(p.parent == run / "plots" for p in written)
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == sorted(p.name for p in written)
