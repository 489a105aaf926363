"""The parts of scripts/bench_mdpo_tokendrop.py that decide its answers, without training anything:
the swapped-pair control folder (tests/pixel_dpo.py), the job plan, and the "within 2%" verdict of the summary."""

from __future__ import annotations

import importlib.util
import json
from argparse import Namespace
from pathlib import Path

import pytest
from pixel_dpo import swap_pairs

from rlvid.data.sample import Sample
from rlvid.trainers.mdpo.pairs import Pair, PairWriter, is_complete, read_pairs

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_mdpo_tokendrop", REPO / "scripts" / "bench_mdpo_tokendrop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pair_folder(folder: Path) -> Path:
    sample = Sample(id="c1", video="videos/c1.mp4", task="temporal_grounding", question="When?",
                    intervals=[[3.0, 4.0]], duration=12.0)
    pairs = [Pair("c1", sample, "<answer>3.0 to 4.0</answer>", "<answer>0.0 to 1.0</answer>", 1.0, 0.0,
                  [1, 2, 3], [4, 5], ref_chosen_logp=-1.5, ref_rejected_logp=-7.0, ref_model="m", batch="b0"),
             Pair("c1", sample, "<answer>3.0 to 5.0</answer>", "<answer>0.0 to 1.0</answer>", 0.5, 0.0,
                  [6], [4, 5], ref_chosen_logp=-2.0, ref_rejected_logp=-7.0, ref_model="m", batch="b0")]
    PairWriter(folder, 0).write_batch("b0", ["c1"], [[1.0, 0.5, 0.0]], pairs)
    (folder / "settings.json").write_text("{}\n")
    (folder / "complete").write_text("ok\n")
    return folder


def test_swapped_pairs_exchange_sides_and_keep_the_gap(tmp_path):
    src = _pair_folder(tmp_path / "pairs")
    dst = swap_pairs(src, tmp_path / "swapped")
    assert is_complete(dst) and (dst / "settings.json").is_file()
    before = {p.chosen_ids[0]: p for p in read_pairs(src)}
    after = read_pairs(dst)
    assert len(after) == len(before) == 2
    for p in after:
        orig = next(o for o in before.values() if o.chosen == p.rejected and o.chosen_ids == p.rejected_ids)
        assert (p.chosen, p.chosen_ids, p.ref_chosen_logp) == (orig.rejected, orig.rejected_ids, orig.ref_rejected_logp)
        assert (p.rejected, p.ref_rejected_logp) == (orig.chosen, orig.ref_chosen_logp)
        assert p.gap == orig.gap > 0  # the trainer refuses a negative gap; with gap_weighting none it is unused
        assert p.meta["swapped"] is True


def test_swap_refuses_an_unfinished_folder(tmp_path):
    src = _pair_folder(tmp_path / "pairs")
    (src / "complete").unlink()
    with pytest.raises(FileNotFoundError, match="not a complete pair folder"):
        swap_pairs(src, tmp_path / "swapped")


def test_plan_runs_mdpo_after_its_pairs_and_every_mode_per_seed():
    jobs = _bench().plan(Namespace(seeds=[0, 1], modes=["none", "token"], skip_mdpo=False, adapt_sft_steps=0))
    assert jobs["mdpo-s1"] == ["pairs-s1"] and jobs["mdpo_swapped-s0"] == ["pairs-s0"]
    assert {j for j in jobs if j.startswith("grpo_")} == {"grpo_none-s0", "grpo_none-s1", "grpo_token-s0",
                                                          "grpo_token-s1"}
    assert not any(j.startswith("adapt_") for j in jobs)
    with_adapt = list(_bench().plan(Namespace(seeds=[0, 1], modes=["none"], skip_mdpo=True, adapt_sft_steps=80)))
    assert with_adapt[-2:] == ["adapt_none-s0", "adapt_none-s1"]  # the optional long jobs start last


def test_within_two_percent_is_judged_on_the_reward_with_the_run_s_own_mode():
    bench = _bench()

    def grpo(seed, mode, own, none):
        scores = {mode: {"mIoU": own, "reward": own}, "none": {"mIoU": none, "reward": none}}
        return {"job": f"grpo_{mode}-s{seed}", "seed": seed, "scores": scores}

    results = {}
    for seed in (0, 1):
        for mode, own, none in (("none", 0.50, 0.50), ("token", 0.495, 0.40), ("frame", 0.45, 0.52),
                                ("patch", 0.55, 0.50)):
            results[f"grpo_{mode}-s{seed}"] = grpo(seed, mode, own, none)
    report = bench.summarise(Namespace(modes=["none", "token", "frame", "patch"], seeds=[0, 1]), results)
    g = report["grpo"]
    assert g["token"]["reward_vs_none"] == pytest.approx(-0.01) and g["token"]["within_2pct"]
    assert g["frame"]["reward_vs_none"] == pytest.approx(-0.10) and not g["frame"]["within_2pct"]
    assert not g["frame"]["at_most_2pct_worse"]
    assert g["patch"]["reward_vs_none"] == pytest.approx(0.10) and not g["patch"]["within_2pct"]
    assert g["patch"]["at_most_2pct_worse"]  # better by 10%: not "within 2%", but no loss
    table = bench.tables(json.loads(json.dumps(report)))
    assert "| frame | 0.450 | 0.450 | 0.520 | 0.520 | -10.0% | False | False |" in table


def test_every_drop_mode_keeps_the_flash_of_a_flash_clip(tmp_path):
    """What bench_mdpo_tokendrop reports as a finding: at the default threshold no mode drops the event; each keeps
    the first temporal patch, the flash's and the one after it (the return to dark), and nothing else."""
    from pixel_dpo import drop_report, flash_recipe
    from pixel_learning import make_flash_setup

    setup = make_flash_setup(tmp_path / "setup", n=20)
    recipe = flash_recipe(tmp_path / "r.yaml", setup["model"], setup["data"], tmp_path / "out", 0)
    for mode in ("token", "frame", "patch"):
        report = drop_report(recipe, setup["model"], mode, n=4)
        assert report["flash_kept"] == len(report["clips"]) == 4, mode
        for clip in report["clips"]:
            start = clip["flash"][0]
            expected = sorted({0.0, start, start + 1.0} - {12.0})
            assert clip["kept_patch_times"] == expected, (mode, clip)
    none = drop_report(recipe, setup["model"], "none", n=4)
    assert none["mean_patches_kept"] == 12
