"""SFT on target answers: the loss falls and the final folder loads with from_pretrained."""

from __future__ import annotations

import json

from tiny_setup import make_tiny_setup, write_recipe
from transformers import AutoModelForImageTextToText

from rlvid.app.train import run_sft


def test_sft_lowers_the_loss_and_saves_a_loadable_model(tmp_path):
    setup = make_tiny_setup(tmp_path)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run",
                          {"trainer": {"algorithm": "sft", "micro_batch_size_per_device": 3},
                           "sft": {"steps": 12, "lr": 3.0e-3, "global_samples_per_step": 8}})
    final = run_sft(str(recipe))
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl") if '"loss"' in line]
    assert len(rows) == 12
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    model = AutoModelForImageTextToText.from_pretrained(final)
    assert model.config.model_type == "qwen2_5_vl"
    assert (final / "tokenizer.json").is_file() and (final / "processor_config.json").is_file()


def test_plot_writes_pngs_of_a_run(tmp_path):
    from rlvid.plot import plot_run

    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 1, "stage": "grpo", "rewards/total": 0.1, "rewards/format": 0.2, "kl_mean": 0.0, "time/gen": 1.0},
        {"step": 2, "stage": "grpo", "rewards/total": 0.3, "rewards/format": 0.4, "kl_mean": 0.01, "time/gen": 1.1},
        {"step": 2, "stage": "grpo", "eval/temporal_grounding/mIoU": 0.2},
    ]) + "\n")
    names = sorted(p.name for p in plot_run(tmp_path))
    assert names == ["grpo_eval_temporal_grounding.png", "grpo_kl.png", "grpo_overview.png", "grpo_phase_times.png",
                     "grpo_rewards.png"]
    assert all((tmp_path / "plots" / n).stat().st_size > 1000 for n in names)


def test_stop_when_ends_the_run_after_the_first_evaluation_reaching_it(tmp_path):
    setup = make_tiny_setup(tmp_path)
    steps = {}
    for name, threshold in (("reached", 0.0), ("never", 2.0)):  # mIoU is in [0, 1]: 0.0 is reached, 2.0 never
        recipe = write_recipe(tmp_path / f"{name}.yaml", setup, tmp_path / name, {
            "trainer": {"algorithm": "sft", "micro_batch_size_per_device": 4, "eval_steps": 2,
                        "stop_when": {"eval/temporal_grounding/mIoU": threshold}},
            "hooks": [{"name": "eval_grounding"}],
            "sft": {"steps": 6, "lr": 3.0e-3, "global_samples_per_step": 4}})
        final = run_sft(str(recipe))
        assert (final / "model.safetensors").is_file()
        steps[name] = [json.loads(line)["step"] for line in open(tmp_path / name / "metrics.jsonl") if '"loss"' in line]
    assert steps == {"reached": [1, 2], "never": [1, 2, 3, 4, 5, 6]}
