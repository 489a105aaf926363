"""GRPO with the efficiency options: same step as the plain path, per-phase timings and token metrics logged."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.trainers.grpo import GRPOTrainer

LENGTH_REWARD = "def length(completions, **kw):\n    return [len(c) / 10 for c in completions]\n"
VIDEO = {"fps": 4.0, "min_frames": 8, "max_frames": 8, "total_pixels": 8 * 3136,
         "min_pixels_per_frame": 3136, "max_pixels_per_frame": 3136}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("grpo_eff"))


def trainer(setup, tmp_path, name, reuse, shared, extra=None):
    (tmp_path / "length.py").write_text(LENGTH_REWARD)  # varies within groups: nonzero advantages
    overrides = {"data": {"video": dict(VIDEO)},
                 "trainer": {"max_steps": 2, "beta": 0.04, "num_iterations": 2, "lr": 0.01,
                             "micro_batch_size_per_device": 3, "reuse_vision": reuse, "shared_prefix": shared},
                 "rewards": {"functions": [{"name": "./length.py:length"}]}}
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    recipe = write_recipe(tmp_path / f"{name}.yaml", setup, tmp_path / name, overrides)
    return grpo_trainer(load_recipe(recipe), tmp_path)


def capture_gradients(t: GRPOTrainer) -> list[dict[str, torch.Tensor]]:
    """Gradients at every optimizer step (compared directly: Adam's first steps amplify float noise)."""
    seen: list[dict[str, torch.Tensor]] = []
    step = t.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append({n: p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None})
        return step(*args, **kwargs)

    t.optimizer.step = recording_step
    return seen


def one_step(t: GRPOTrainer) -> dict[str, float]:
    torch.manual_seed(7)
    t.timer.reset()
    with t.timer("step"):
        metrics = t.train_step(t.local_batch(0), 0)
    return dict(metrics, **t.timer.metrics())


def test_reuse_and_shared_prefix_give_the_plain_step(setup, tmp_path):
    plain = trainer(setup, tmp_path, "plain", reuse=False, shared=False)
    fast = trainer(setup, tmp_path, "fast", reuse=True, shared=True)
    grads_a, grads_b = capture_gradients(plain), capture_gradients(fast)
    a, b = one_step(plain), one_step(fast)
    assert a["rewards/total"] == b["rewards/total"]  # same sampled completions
    for key in ("loss", "kl_mean", "ratio_min", "ratio_max", "grad_norm"):
        assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-6), key
    assert len(grads_a) == len(grads_b) == 2  # mu = 2 optimizer steps, the second after the old pass's ratios
    for ga, gb in zip(grads_a, grads_b, strict=True):
        assert ga.keys() == gb.keys() and any("visual" in n for n in ga)
        for name, g in ga.items():
            torch.testing.assert_close(gb[name], g, rtol=1e-3, atol=1e-6, msg=name)
    # the vision tower ran once per video in the step (gen + old pass) instead of per rollout and pass
    assert b["vision/computed"] == 2 and b["vision/reused"] >= 2
    assert a["vision/computed"] == 0
    for key in ("time/gen/vision", "time/gen/prefill", "time/gen/decode_tokens", "time/gen/processor",
                "time/old/prefill", "time/ref/prefill", "time/update_actor/prefill"):
        assert key in b, key
    assert "time/gen/decode" in a  # first use of the videos: decoded inside gen
    assert "time/old/prefill" not in a and "time/old/vision" in a


def test_token_drop_and_streaming_run_and_log_visual_tokens(setup, tmp_path):
    full = trainer(setup, tmp_path, "full", reuse=True, shared=True)
    drop = {"token_drop": {"mode": "patch", "threshold": 0.05, "min_kept_frames": 4}}
    dropped = trainer(setup, tmp_path, "drop", reuse=True, shared=True, extra=
                      {"data": {"video": dict(VIDEO, streaming=True, stream_chunk_seconds=2.0, **drop)}})
    a, b = one_step(full), one_step(dropped)
    assert a["tokens/frames_kept_fraction"] == 1.0
    assert b["tokens/frames_kept_fraction"] < 1.0
    assert b["tokens/visual_per_prompt"] < a["tokens/visual_per_prompt"]
    assert dropped.builder.streams
    dropped.fit()
    rows = [json.loads(line) for line in open(tmp_path / "drop" / "metrics.jsonl") if '"time/step"' in line]
    assert len(rows) == 2 and all(r["tokens/frames_kept_fraction"] < 1.0 for r in rows)
