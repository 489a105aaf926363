"""The colocated vLLM engine against a fake `vllm` module: requests, rollouts, weight pushes, caches, sleep mode."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe
from vllm_fakes import FakeLLM, FakeSamplingParams, fake_vllm_module

from rlvid.config import load_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.rollout import SamplingParams, make_engine
from rlvid.rollout.vllm_colocate import VLLMColocateEngine
from rlvid.rollout.vllm_outputs import PromptMismatchError
from rlvid.rollout.weight_names import WeightNameError, model_architecture, vllm_name

CACHE_RESETS = ["reset_prefix_cache", "reset_mm_cache", "reset_encoder_cache"]
LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def launch_env(monkeypatch):
    """The engine sets the external launcher's variables; restore them after the test."""
    for key in LAUNCH_ENV:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("colocate")
    s = make_tiny_setup(root)
    recipe = load_recipe(write_recipe(root / "r.yaml", s, root / "run"))
    processor = load_processor(recipe.model.path)
    return recipe, processor, make_input_builder(recipe, processor), load_split(recipe, "train")[:3]


@pytest.fixture
def model(setup):
    return load_policy(setup[0].model)


def vllm_param_names(model) -> set[str]:
    arch = model_architecture(model)
    return {vllm_name(n, arch) for n, _ in model.named_parameters()}


def make(setup, model, **kwargs) -> VLLMColocateEngine:
    recipe, processor, builder, _ = setup
    llm = FakeLLM(processor=processor, architecture=model_architecture(model), param_names=vllm_param_names(model),
                  eos_token_id=processor.tokenizer.eos_token_id, **kwargs.pop("llm", {}))
    return VLLMColocateEngine(llm, builder, model, FakeSamplingParams, seed=7, **kwargs)


def test_generate_sends_one_request_per_prompt_with_n_g_and_returns_grouped_rollouts(setup, model):
    recipe, processor, builder, samples = setup
    engine = make(setup, model)
    out = engine.generate(samples, 4, SamplingParams(temperature=0.8, max_new_tokens=6))
    (prompts, params), = engine.llm.generate_calls
    assert [p["prompt"] for p in prompts] == [builder.prompt_text(s) for s in samples]
    assert all(p.n == 4 and p.temperature == 0.8 and p.max_tokens == 6 and p.logprobs == 0 for p in params)
    assert len({p.seed for p in params}) == 3  # a seed per prompt
    video_pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert video_pad in params[0].logit_bias  # placeholders are never sampled, as with the hf engine
    assert out.prompt_index == [0] * 4 + [1] * 4 + [2] * 4
    assert len(out.logprobs) == 12 and all(len(lp) == len(ids) for lp, ids in zip(out.logprobs, out.token_ids,
                                                                                strict=True))
    assert out.logprobs[0] == pytest.approx([-0.1 * (j + 1) for j in range(len(out.token_ids[0]))])
    assert out.truncated.count(True) == 6  # the fake's odd completions reach max_tokens
    assert out.texts == processor.tokenizer.batch_decode(out.token_ids, skip_special_tokens=True)


def test_first_generate_pushes_the_policy_and_resets_caches_before_sampling(setup, model):
    engine = make(setup, model)
    engine.generate(setup[3][:1], 2, SamplingParams(max_new_tokens=4))
    calls = engine.llm.calls
    assert calls.index("generate") > calls.index("reset_encoder_cache")  # weights in place before sampling
    received = engine.llm.vllm_model.weights
    arch = model_architecture(model)
    assert set(received) == vllm_param_names(model)
    for name, param in model.named_parameters():
        assert torch.equal(received[vllm_name(name, arch)], param)
    assert engine.last_push.tensors == len(received) and engine.last_push.buckets >= 1


def test_sync_pushes_changed_weights_and_resets_every_cache(setup, model):
    engine = make(setup, model, bucket_bytes=64 * 1024)
    engine.generate(setup[3][:1], 2, SamplingParams(max_new_tokens=4))
    full = engine.last_push
    assert full.buckets > 1  # small buckets: never the whole model in one call
    engine.llm.calls.clear()
    for name, p in model.named_parameters():
        if name.startswith("model.visual."):
            p.requires_grad_(False)  # frozen vision tower: unchanged, not re-sent
    with torch.no_grad():
        model.model.language_model.norm.weight.add_(1.0)
    engine.sync_weights(model)
    assert engine.llm.calls[-3:] == CACHE_RESETS  # no stale prefix, processed input or vision embedding survives
    assert engine.last_push.tensors < full.tensors
    assert torch.equal(engine.llm.vllm_model.weights["language_model.model.norm.weight"],
                       model.model.language_model.norm.weight)


def test_a_vllm_parameter_left_unwritten_by_the_first_push_is_an_error(setup, model):
    engine = make(setup, model)
    engine.llm.vllm_model.param_names = vllm_param_names(model) | {"visual.extra_adapter.weight"}
    with pytest.raises(WeightNameError, match=r"left 1 vLLM parameter\(s\) unwritten.*visual\.extra_adapter\.weight"):
        engine.generate(setup[3][:1], 2, SamplingParams(max_new_tokens=4))


def test_sleep_mode_frees_memory_between_rollouts_and_repushes_after_wake(setup, model):
    engine = make(setup, model, enable_sleep_mode=True)
    assert engine.llm.calls == ["sleep:2"]
    engine.generate(setup[3][:1], 2, SamplingParams(max_new_tokens=4))
    assert engine.llm.calls == ["sleep:2", "wake_up:weights", *["collective_rpc"] * 5, *CACHE_RESETS,
                                "wake_up:kv_cache", "generate", "sleep:2"]
    engine.llm.calls.clear()
    engine.sync_weights(model)  # level 2 discarded the weights: wake them and push everything, KV cache stays freed
    assert engine.llm.calls[0] == "wake_up:weights" and "wake_up:kv_cache" not in engine.llm.calls
    assert engine.last_push.tensors == len(vllm_param_names(model))
    engine.llm.calls.clear()
    engine.generate(setup[3][:1], 2, SamplingParams(max_new_tokens=4))
    assert engine.llm.calls == ["wake_up:kv_cache", "generate", "sleep:2"]  # fresh weights: no second push
    assert [e["event"] for e in engine.memory_log][:3] == ["sleep", "wake:weights", "wake:kv_cache"]


def test_vllm_prompt_tokens_differing_from_training_stop_the_run(setup, model):
    engine = make(setup, model, llm={"prompt_id_offset": 1})
    with pytest.raises(PromptMismatchError, match="at position 0"):
        engine.generate(setup[3][:1], 2, SamplingParams(max_new_tokens=4))


def test_make_engine_starts_vllm_from_the_recipe(setup, model, launch_env):
    monkeypatch = launch_env
    recipe, processor, builder, samples = setup
    module = fake_vllm_module(processor=processor, architecture=model_architecture(model),
                              param_names=vllm_param_names(model), eos_token_id=processor.tokenizer.eos_token_id)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr("rlvid.rollout.vllm_colocate.vllm_on_cpu", lambda: False)  # real vLLM may be imported
    recipe.rollout.engine = "vllm"
    recipe.rollout.vllm.gpu_memory_utilization = 0.35
    try:
        engine = make_engine(recipe, Policy(model, builder))
    finally:
        recipe.rollout.engine = "hf"
    (llm,) = module.instances
    assert isinstance(engine, VLLMColocateEngine) and engine.llm is llm
    assert llm.model_path == recipe.model.path
    assert llm.kwargs == dict(tensor_parallel_size=1, gpu_memory_utilization=0.35, enable_sleep_mode=False,
                              distributed_executor_backend="external_launcher", seed=recipe.trainer.seed,
                              dtype="float32", logprobs_mode="processed_logprobs",
                              limit_mm_per_prompt={"image": 0, "video": 1}, enable_prefix_caching=True,
                              mm_device_do_normalize=False, trust_remote_code=False)
    out = engine.generate(samples[:2], 3, SamplingParams(max_new_tokens=5))
    assert out.prompt_index == [0, 0, 0, 1, 1, 1] and out.logprobs is not None
    assert {k: os.environ[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")} == \
        {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}  # what vLLM's external launcher reads


def test_tensor_parallel_size_must_divide_the_processes(setup, model, launch_env):
    monkeypatch = launch_env
    recipe, processor, builder, _ = setup
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
    recipe.rollout.engine, recipe.rollout.vllm.tensor_parallel_size = "vllm", 2
    try:
        with pytest.raises(ValueError, match=r"tensor_parallel_size=2 must divide the number of processes \(1\)"):
            make_engine(recipe, Policy(model, builder))
    finally:
        recipe.rollout.engine, recipe.rollout.vllm.tensor_parallel_size = "hf", 1


def _tensor_parallel_rank(rank: int, root: str, recipe_path: str) -> None:
    """One of 2 ranks sharing a vLLM copy (gloo): rank 0 has 2 prompts, rank 1 has 1."""
    import json

    torch.distributed.init_process_group("gloo", init_method=f"file://{root}/pg", rank=rank, world_size=2)
    recipe = load_recipe(recipe_path)
    processor = load_processor(recipe.model.path)
    builder = make_input_builder(recipe, processor)
    samples = load_split(recipe, "train")[:3]
    model = load_policy(recipe.model)
    llm = FakeLLM(processor=processor, architecture=model_architecture(model), param_names=vllm_param_names(model),
                  eos_token_id=processor.tokenizer.eos_token_id)
    engine = VLLMColocateEngine(llm, builder, model, FakeSamplingParams, tp_size=2, tp_group=None, tp_rank=rank,
                                seed=7)
    out = engine.generate(samples[:2] if rank == 0 else samples[2:], 2, SamplingParams(max_new_tokens=4))
    (prompts, params), = llm.generate_calls
    record = {"sent": [p["prompt"] for p in prompts], "seeds": [p.seed for p in params],
              "all": [[c.token_ids for c in sorted(o.outputs, key=lambda c: c.index)] for o in llm.last_outputs],
              "prompt_index": out.prompt_index, "token_ids": out.token_ids,
              "expected": [builder.prompt_text(s) for s in samples]}
    with open(f"{root}/rank{rank}.json", "w") as f:
        json.dump(record, f)
    torch.distributed.destroy_process_group()


def test_tensor_parallel_ranks_send_the_same_requests_and_take_their_own_completions(setup, tmp_path):
    import json

    recipe_path = Path(setup[0].trainer.output_dir).parent / "r.yaml"  # written by the setup fixture
    torch.multiprocessing.spawn(_tensor_parallel_rank, args=(str(tmp_path), str(recipe_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["sent"] == r1["sent"] == r0["expected"]  # rank 0's prompts, then rank 1's, on both ranks
    assert r0["seeds"] == r1["seeds"]  # identical sampling on the ranks of one model copy
    assert r0["prompt_index"] == [0, 0, 1, 1] and r1["prompt_index"] == [0, 0]
    assert r0["token_ids"] == r0["all"][0] + r0["all"][1]
    assert r1["token_ids"] == r1["all"][2]
