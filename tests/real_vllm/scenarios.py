"""Real-vLLM scenarios, each run in its own process: `python tests/real_vllm/scenarios.py NAME ROOT OUT.json [ARGS]`.

vLLM starts one engine per process (its external launcher sets up torch.distributed), so the tests
(test_vllm_real.py) run every scenario as a subprocess and check the figures it writes. ROOT holds
the shared model folders and data (`prepare`); every scenario uses the `tiny32` preset (text
head_dim 32, the smallest vLLM's CPU attention takes) in fp32 unless told otherwise.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import torch

G = 4
# 8 frames of 112x112: 80 visual tokens per video after the 2x2 merge (Qwen2.5-VL), prompts of ~200 tokens
VIDEO = {"fps": 2.0, "min_frames": 8, "max_frames": 8, "total_pixels": 8 * 112 * 112,
         "min_pixels_per_frame": 112 * 112, "max_pixels_per_frame": 112 * 112}


def prepare(root: Path, arch: str) -> dict[str, Path]:
    """Synthetic grounding data and a tiny32 model of `arch` under `root` (reused when there)."""
    from tiny_setup import make_tiny_setup

    from rlvid.models.tiny import make_tiny_model

    setup = make_tiny_setup(root / "setup", arch=arch, n=12)
    model = root / f"tiny32-{arch}"
    if not (model / "config.json").is_file():
        make_tiny_model(model, arch=arch, preset="tiny32")
    return {"model": model, "data": setup["data"]}


def make_recipe(root: Path, arch: str, dtype: str = "fp32", overrides: dict | None = None, name: str = "run"):
    from tiny_setup import _merge, write_recipe

    from rlvid.config import load_recipe

    setup = prepare(root, arch)
    base = {"model": {"dtype": dtype}, "data": {"video": dict(VIDEO)},
            "rollout": {"engine": "vllm", "num_generations": G, "max_new_tokens": 16}}
    _merge(base, overrides or {})
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return load_recipe(write_recipe(folder / "recipe.yaml", setup, folder / "out", base))


def logprob_gap(model, builder, samples, out) -> dict[str, float]:
    """|log pi_vLLM - log pi_trainer| over the sampled tokens (trainer: the same forward GRPO uses)."""
    from rlvid.policy.encode import collate, encode_prompts
    from rlvid.policy.logprobs import completion_logprobs
    from rlvid.rollout.is_correction import rollout_logprob_rows

    encoded = encode_prompts(builder, samples)
    inputs, mask = collate([encoded[i] for i in out.prompt_index], out.token_ids,
                           builder.processor.tokenizer.pad_token_id)
    with torch.no_grad():
        logp, m = completion_logprobs(model, inputs, mask, 1.0)
    rollout = rollout_logprob_rows(mask, out.logprobs)[:, -logp.shape[1]:]
    diff = (logp - rollout).abs()[m.bool()]
    return {"tokens": diff.numel(), "mean_abs": float(diff.mean()), "max_abs": float(diff.max()),
            "mean_logp": float(logp[m.bool()].mean())}


def start(recipe, **engine_kwargs):
    from rlvid.data.recipe_data import load_split, make_input_builder
    from rlvid.models.loading import load_policy, load_processor
    from rlvid.rollout.vllm_colocate import create_colocate_engine

    processor = load_processor(recipe.model.path)
    builder = make_input_builder(recipe, processor)
    model = load_policy(recipe.model, device="cpu").eval()
    t0 = time.perf_counter()
    engine = create_colocate_engine(recipe, model, processor, builder, **engine_kwargs)
    return model, processor, builder, engine, load_split(recipe, "train"), time.perf_counter() - t0


def scenario_generate(root: Path, arch: str, dtype: str = "fp32") -> dict:
    """Video prompts through the colocated engine: prompt ids == the training processor's, log-prob gap."""
    from rlvid.rollout import SamplingParams

    recipe = make_recipe(root, arch, dtype, name=f"generate-{arch}-{dtype}")
    model, processor, builder, engine, samples, start_s = start(recipe)
    samples = samples[:3]
    t0 = time.perf_counter()
    out = engine.generate(samples, G, SamplingParams(temperature=1.0, max_new_tokens=16))
    placeholders = set(engine.placeholder_ids)
    return {"start_seconds": start_s, "generate_seconds": time.perf_counter() - t0,
            "prompts_checked": engine._prompts_checked, "prompt_index": out.prompt_index,
            "lengths": [len(t) for t in out.token_ids], "logprob_lengths": [len(lp) for lp in out.logprobs],
            "placeholders_sampled": sum(t in placeholders for ids in out.token_ids for t in ids),
            "torch_threads": torch.get_num_threads(),
            "gap": logprob_gap(model, builder, samples, out)}


def _seeded_outputs(engine, samples):
    from rlvid.rollout import SamplingParams

    engine._calls = 1000  # per-request seeds derive from the call count: the same in both processes
    out = engine.generate(samples, G, SamplingParams(temperature=1.0, max_new_tokens=16))
    return {"token_ids": out.token_ids, "logprobs": out.logprobs}


def scenario_push(root: Path, arch: str) -> dict:
    """Change the policy (LoRA on q/v, noise on the tied embedding and one MLP), push it in 1-byte buckets.

    Figures: the gap before the push (stale), after it (synced), the push's bucket and tensor counts,
    and seeded outputs to compare with a fresh engine started on the merged weights (`fresh`).
    """
    from peft import LoraConfig, get_peft_model

    recipe = make_recipe(root, arch, name=f"push-{arch}")
    model, processor, builder, engine, samples, _ = start(recipe, bucket_bytes=1)  # every tensor its own bucket
    samples = samples[:2]
    from rlvid.rollout import SamplingParams

    sampling = SamplingParams(temperature=1.0, max_new_tokens=16)
    before = logprob_gap(model, builder, samples, engine.generate(samples, G, sampling))
    policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
            if name.endswith(("embed_tokens.weight", "layers.0.mlp.down_proj.weight")):
                p.add_(torch.randn_like(p) * 0.05)  # small: the distribution stays spread, not one sure token
                p.requires_grad_(True)  # trainable: a partial push must send it
    stale = logprob_gap(policy, builder, samples, engine.generate(samples, G, sampling))
    engine.sync_weights(policy)
    push = engine.last_push
    synced = logprob_gap(policy, builder, samples, engine.generate(samples, G, sampling))
    merged = copy.deepcopy(policy).merge_and_unload()
    folder = root / f"pushed-{arch}"
    merged.save_pretrained(folder)
    processor.save_pretrained(folder)
    return {"before": before, "stale": stale, "synced": synced, "push_tensors": push.tensors,
            "push_buckets": push.buckets, "outputs": _seeded_outputs(engine, samples)}


def scenario_fresh(root: Path, arch: str) -> dict:
    """A new engine started from the folder `push` saved: the seeded outputs to compare."""
    recipe = make_recipe(root, arch, name=f"fresh-{arch}", overrides={"model": {"path": str(root / f"pushed-{arch}")}})
    model, processor, builder, engine, samples, _ = start(recipe)
    return {"outputs": _seeded_outputs(engine, samples[:2])}


def scenario_grpo(root: Path, arch: str) -> dict:
    """3 GRPO steps with rollout.engine=vllm: the per-step gap between vLLM's and the trainer's log-probs."""
    from rlvid.app.compose import grpo_trainer

    recipe = make_recipe(root, arch, name=f"grpo-{arch}", overrides={
        "trainer": {"max_steps": 3, "lr": 1e-2, "global_prompts_per_step": 2, "micro_batch_size_per_device": 4}})
    t0 = time.perf_counter()
    trainer = grpo_trainer(recipe, root / f"grpo-{arch}")
    trainer.fit()
    rows = [json.loads(line) for line in open(Path(recipe.trainer.output_dir) / "metrics.jsonl")]
    steps = [r for r in rows if "rollout/logp_abs_diff" in r]
    return {"seconds": time.perf_counter() - t0, "steps": len(steps),
            "logp_abs_diff": [r["rollout/logp_abs_diff"] for r in steps],
            "sync_seconds": [r.get("time/sync") for r in steps], "pushes": trainer.engine.last_push.tensors}


LENGTH = "def length(completions, **kw):\n    return [min(len(c), 40) / 40 for c in completions]\n"


def _cli_recipe(root: Path, name: str, overrides: dict) -> Path:
    from tiny_setup import write_recipe

    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "length.py").write_text(LENGTH)  # varies with the completion: scores differ, pairs form
    base = {"model": {"dtype": "fp32"}, "data": {"video": dict(VIDEO), "max_samples": 4},
            "rollout": {"engine": "vllm", "max_new_tokens": 12}}
    from tiny_setup import _merge

    _merge(base, overrides)
    return write_recipe(folder / "recipe.yaml", prepare(root, "qwen2_5_vl"), folder / "out", base)


def scenario_mdpo_pairs(root: Path) -> dict:
    """One M-DPO pair-building round (`rlvid mdpo-pairs`) sampling with the vLLM engine."""
    from rlvid.cli import main
    from rlvid.trainers.mdpo.pairs import read_pairs

    path = _cli_recipe(root, "mdpo", {"trainer": {"algorithm": "mdpo"},
                                      "mdpo": {"min_gap": 0.05, "metric": [{"name": "./length.py:length"}]},
                                      "rewards": {"functions": [{"name": "format", "kwargs": {"think": "forbidden"}}]}})
    out = root / "mdpo" / "pairs"
    code = main(["mdpo-pairs", str(path), "--n", "4", "--out", str(out)])
    pairs = read_pairs(out)
    done = [json.loads(line) for line in open(out / "done-rank0.jsonl")]
    return {"code": code, "prompts": len(done), "scores_per_prompt": [len(d["scores"]) for d in done],
            "pairs": len(pairs), "min_gap": min((p.gap for p in pairs), default=None),
            "ref_logp_negative": all(p.ref_chosen_logp < 0 and p.ref_rejected_logp < 0 for p in pairs),
            "ids_present": all(p.chosen_ids and p.rejected_ids for p in pairs)}


def scenario_select(root: Path) -> dict:
    """`rlvid select` (offline variance-aware selection) with k=4 rollouts per sample from the vLLM engine."""
    from data_selection.stats import read_stats
    from rlvid.cli import main
    from rlvid.data.loaders import load_jsonl

    path = _cli_recipe(root, "select", {
        "rewards": {"functions": [{"name": "./length.py:length"}]},
        "selection": {"offline": {"strategy": "top_variance", "kwargs": {"fraction": 0.5}, "batch_size": 2}}})
    out = root / "select" / "sel"
    code = main(["select", str(path), "--k", "4", "--out", str(out)])
    stats = read_stats(out / "stats.jsonl")
    return {"code": code, "stats": len(stats), "rewards_per_sample": [len(s.rewards) for s in stats],
            "variances": [s.variance for s in stats], "selected": len(load_jsonl(out / "selected.jsonl").samples)}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server, log: Path, timeout: float = 300.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"vllm serve exited ({server.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"vllm serve not healthy after {timeout} s:\n{log.read_text()[-4000:]}")


def scenario_server(root: Path, arch: str = "qwen2_5_vl") -> dict:
    """A real `vllm serve` on CPU at 127.0.0.1 and the vllm-server engine's generation through TRL's client.

    No NCCL group (GPU only): the server starts without a weight-transfer engine and nothing is pushed.
    """
    import os
    import subprocess

    from trl.generation.vllm_client import VLLMClient

    from rlvid.rollout import SamplingParams
    from rlvid.rollout.vllm_cpu import CPU_MAX_NUM_BATCHED_TOKENS, cpu_list
    from rlvid.rollout.vllm_server import VLLMServerEngine, python_serve_argv, serve_command

    recipe = make_recipe(root, arch, name=f"server-{arch}", overrides={"rollout": {"engine": "vllm-server"}})
    port = _free_port()
    argv = serve_command(recipe.model.path, host="127.0.0.1", port=port, dtype="float32", weight_transfer=False,
                         max_num_batched_tokens=CPU_MAX_NUM_BATCHED_TOKENS)
    argv = python_serve_argv(argv, sys.executable)
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_CPU_OMP_THREADS_BIND": cpu_list(os.sched_getaffinity(0))}
    log = root / f"vllm-serve-{port}.log"
    t0 = time.perf_counter()
    with open(log, "w") as out:
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", server, log)
        start_s = time.perf_counter() - t0
        from rlvid.data.recipe_data import load_split, make_input_builder
        from rlvid.models.loading import load_policy, load_processor

        processor = load_processor(recipe.model.path)
        builder = make_input_builder(recipe, processor)
        model = load_policy(recipe.model, device="cpu").eval()
        client = VLLMClient(base_url=f"http://127.0.0.1:{port}", connection_timeout=60)
        engine = VLLMServerEngine(client, builder, model, is_main=True, seed=recipe.trainer.seed)
        samples = load_split(recipe, "train")[:2]
        t0 = time.perf_counter()
        out = engine.generate(samples, G, SamplingParams(temperature=1.0, max_new_tokens=16))
        gen_s = time.perf_counter() - t0
        engine.reset_caches()  # the dev endpoints the engine calls after a push answer
        return {"start_seconds": start_s, "generate_seconds": gen_s, "prompts_checked": engine._prompts_checked,
                "prompt_index": out.prompt_index, "lengths": [len(t) for t in out.token_ids],
                "gap": logprob_gap(model, builder, samples, out)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


SCENARIOS = {"server": scenario_server, "generate": scenario_generate, "push": scenario_push,
             "fresh": scenario_fresh, "grpo": scenario_grpo, "mdpo_pairs": scenario_mdpo_pairs,
             "select": scenario_select}


if __name__ == "__main__":
    name, root, out, *args = sys.argv[1:]
    result = SCENARIOS[name](Path(root), *args)
    Path(out).write_text(json.dumps(result))
