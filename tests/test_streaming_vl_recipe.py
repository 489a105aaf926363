"""`streaming.model: qwen_vl`: `rlvid train` / `rlvid eval` run a streaming recipe on a tiny Qwen-VL policy.

The warm start, GRPO and M-DPO go through the shared loop; checkpoints and final/ are Hugging Face folders
that `from_pretrained` loads (and `QwenVLStream.from_pretrained` streams from); LoRA checkpoints export with
`rlvid export`; a stopped run resumes to where an uninterrupted one ends; bad combinations of keys are
RecipeErrors naming the key.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForImageTextToText, AutoProcessor

from rlvid.app.eval import run_eval
from rlvid.app.train import run_train
from rlvid.config import RecipeError, load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"
TINY = ["sft.steps=1", "sft.global_samples_per_step=2", "rollout.num_generations=2",
        "trainer.global_prompts_per_step=2", "streaming.synthetic.chunks=3", "streaming.synthetic.train=2",
        "streaming.synthetic.val=2", "streaming.max_response_tokens=2", "trainer.save_steps=1",
        "trainer.eval_steps=2", "logging.wandb=disabled", "streaming.model=qwen_vl"]


def _overrides(vl_models, arch, out, *extra):
    return [*TINY, f"model.path={vl_models[arch]}", f"trainer.output_dir={out}", *extra]


def _weights(folder):
    model = AutoModelForImageTextToText.from_pretrained(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", ["qwen3_vl", "qwen2_5_vl"])
def test_rlvid_train_and_eval_run_a_streaming_recipe_on_qwen_vl(vl_models, arch, tmp_path, one_thread):
    out = tmp_path / "run"
    final = run_train(str(RECIPE), _overrides(vl_models, arch, out, "trainer.max_steps=2"))
    assert final == out / "final" and (final / "complete").is_file()
    assert not (final / "stream_lm.pt").exists() and (final / "config.json").is_file()
    AutoProcessor.from_pretrained(final)  # the processor is saved next to the weights
    trained, start = _weights(final), _weights(vl_models[arch])
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # warm start + GRPO changed the weights
    warm = out / "sft" / "final"
    assert (warm / "config.json").is_file() and any(not torch.equal(_weights(warm)[k], start[k]) for k in start)
    last = out / "checkpoints" / "step-000002"
    with safe_open(last / "model.safetensors", "pt") as f:  # the HF model's own names (any loader reads them)
        assert set(f.keys()) <= set(trained) and "model.model.language_model.norm.weight" not in f.keys()
    for k, v in _weights(last).items():  # a checkpoint loads with from_pretrained, the final weights
        assert torch.equal(v, trained[k]), k

    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r.get("stage") == "grpo" and "rewards/stream_timing" in r]
    assert [r["step"] for r in train_rows] == [1, 2]
    eval_rows = [r for r in rows if "eval/stream/timing_f1" in r]
    assert run_eval(str(RECIPE), None, _overrides(vl_models, arch, out)) == 0
    metrics = json.loads((final / "eval_val" / "metrics.json").read_text())
    assert metrics["stream/count"] == 2
    assert metrics["stream/timing_f1"] == pytest.approx(eval_rows[-1]["eval/stream/timing_f1"])  # same greedy runs
    assert run_eval(str(RECIPE), str(last), _overrides(vl_models, arch, out)) == 0  # a checkpoint evaluates too
    assert (last / "eval_val" / "metrics.json").is_file()


def test_a_stopped_qwen_vl_streaming_run_resumes_to_the_uninterrupted_weights(vl_models, tmp_path, one_thread):
    whole = run_train(str(RECIPE), _overrides(vl_models, "qwen3_vl", tmp_path / "whole", "trainer.max_steps=2",
                                              "sft.steps=0", "hooks=[]"))
    stopped = tmp_path / "stopped"
    one = run_train(str(RECIPE), _overrides(vl_models, "qwen3_vl", stopped, "trainer.max_steps=1", "sft.steps=0",
                                            "hooks=[]"))
    after_one, a = _weights(one), _weights(whole)
    assert any(not torch.allclose(a[k], after_one[k], atol=1e-6) for k in a)  # the second step is visible
    resumed = run_train(str(RECIPE), _overrides(vl_models, "qwen3_vl", stopped, "trainer.max_steps=2",
                                                "sft.steps=0", "hooks=[]", "trainer.resume=auto"))
    b = _weights(resumed)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(not torch.equal(a[k], _weights(vl_models["qwen3_vl"])[k]) for k in a)  # the steps changed something


def test_bad_qwen_vl_streaming_combinations_name_the_key(vl_models, tmp_path):
    from rlvid.app.stream_compose import qwen_vl_stream

    with pytest.raises(RecipeError, match=r"'model.path' must name the Qwen-VL model"):
        load_recipe(RECIPE, ["streaming.model=qwen_vl"])
    with pytest.raises(RecipeError, match=r"'streaming.drop_threshold' drops visual tokens of streaming.model qwen_vl"):
        load_recipe(RECIPE, ["streaming.drop_threshold=0.1"])
    with pytest.raises(RecipeError, match=r"'streaming.drop_threshold' must be >= 0"):
        load_recipe(RECIPE, ["streaming.model=qwen_vl", "model.path=x", "streaming.drop_threshold=-1"])
    with pytest.raises(RecipeError, match=r"'streaming.model' must be one of \['tiny_lm', 'qwen_vl'\]"):
        load_recipe(RECIPE, ["streaming.model=qwen"])
    with pytest.raises(RecipeError, match=r"'data.video.token_drop.mode' must be none with streaming.model qwen_vl"):
        load_recipe(RECIPE, ["streaming.model=qwen_vl", "model.path=x", "data.video.token_drop.mode=patch"])
    odd = load_recipe(RECIPE, _overrides(vl_models, "qwen3_vl", tmp_path, "data.video.stream_chunk_seconds=1.5"))
    with pytest.raises(RecipeError, match=r"'data.video.stream_chunk_seconds' 1.5 x 'data.video.fps' 2.0 = 3 frames"):
        qwen_vl_stream(odd)


def test_streaming_options_reach_the_qwen_vl_stream(vl_models, tmp_path):
    from rlvid.app.stream_compose import stream_clips, stream_model

    recipe = load_recipe(RECIPE, _overrides(vl_models, "qwen2_5_vl", tmp_path, "streaming.drop_threshold=0.05",
                                            "trainer.reuse_vision=false", "data.video.fps=4.0"))
    stream = stream_model(recipe)
    assert stream.drop is not None and stream.vision.reuse is False and stream.vocab.fps == 4.0
    assert stream_clips(recipe, "train")[0].fps == 4.0  # the synthetic streams are drawn at the model's fps
    assert stream_model(load_recipe(RECIPE, _overrides(vl_models, "qwen2_5_vl", tmp_path))).drop is None


def test_streaming_mdpo_runs_on_qwen_vl_from_the_recipe(vl_models, tmp_path, one_thread):
    out = tmp_path / "mdpo"
    final = run_train(str(RECIPE), _overrides(
        vl_models, "qwen3_vl", out, "trainer.max_steps=2", "sft.steps=0", "trainer.algorithm=mdpo",
        "mdpo.num_samples=8", "rollout.temperature=3.0", "mdpo.min_gap=0.0", "mdpo.pairs_per_step=2",
        "streaming.synthetic.train=4", "streaming.synthetic.chunks=4"))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r.get("stage") == "mdpo" and "loss" in r] == [1, 2]
    trained, start = _weights(final), _weights(vl_models["qwen3_vl"])
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_qwen_vl_streams_from_data_files_are_decoded_at_a_vl_frame_size(tmp_path):
    from rlvid.app.stream_compose import stream_clips
    from rlvid.data.synthetic_streaming import make_stream_clips, write_streaming_data

    data = tmp_path / "data"
    write_streaming_data(data, make_stream_clips(2, ("alert",), seed=3, num_chunks=3), "train")
    files = [f"data.train={data / 'train.jsonl'}", "model.path=x"]
    tiny = stream_clips(load_recipe(RECIPE, files), "train")[0].frames
    vl = stream_clips(load_recipe(RECIPE, [*files, "streaming.model=qwen_vl"]), "train")[0].frames
    capped = stream_clips(load_recipe(RECIPE, [*files, "streaming.model=qwen_vl",
                                               "data.video.max_pixels_per_frame=4096"]), "train")[0].frames
    assert tiny.shape[1] * tiny.shape[2] == 32 * 32
    assert abs(vl.shape[1] * vl.shape[2] - 2048 * 28 * 28 // 64) < 0.1 * 25088  # total_pixels / max_frames
    assert capped.shape[1:3] == (64, 64) and vl.shape[0] == tiny.shape[0] == 6


def test_a_lora_qwen_vl_streaming_checkpoint_exports_to_the_final_model(vl_models, tmp_path, one_thread):
    from rlvid.app.export import export_checkpoint

    out = tmp_path / "lora"
    lora = ["model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8", "trainer.max_steps=1", "hooks=[]"]
    final = run_train(str(RECIPE), _overrides(vl_models, "qwen3_vl", out, *lora))
    exported = export_checkpoint(out / "checkpoints" / "step-000001", tmp_path / "exported", merge_lora=True)
    merged, start = _weights(final), _weights(vl_models["qwen3_vl"])
    assert any(not torch.equal(merged[k], start[k]) for k in start)  # final/ holds the adapters merged in
    assert all(torch.allclose(v, merged[k], atol=1e-6) for k, v in _weights(exported).items())
