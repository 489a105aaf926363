"""vllm-server engine end to end: `vllm serve` on GPU 1, the trainer's model on GPU 0 (needs 2 GPUs).

NCCL cannot put two ranks on one GPU, so the weight push needs a second device; on a 1-GPU machine
this file skips.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from gpu_helpers import report, vllm_recipe

from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.models.tiny import make_tiny_model
from rlvid.policy import Policy
from rlvid.policy.encode import collate, encode_prompts
from rlvid.policy.logprobs import completion_logprobs
from rlvid.rollout import SamplingParams, make_engine
from rlvid.rollout.vllm_server import serve_command

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (server + trainer)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mismatch(engine, model, builder, samples) -> float:
    out = engine.generate(samples, 4, SamplingParams(max_new_tokens=32))
    encoded = encode_prompts(builder, samples)
    inputs, mask = collate([encoded[i] for i in out.prompt_index], out.token_ids,
                           builder.processor.tokenizer.pad_token_id)
    with torch.no_grad():
        logp, m = completion_logprobs(model, {k: v.cuda() for k, v in inputs.items()}, mask.cuda())
    rollout = torch.zeros(mask.shape)
    for r, row in enumerate(out.logprobs):
        rollout[r, mask[r]] = torch.tensor(row)
    return float((logp - rollout[:, -logp.shape[1]:].cuda()).abs()[m.bool()].mean())


def test_server_rollouts_follow_nccl_weight_pushes(gpu_root, tiny_setup):
    model_dir = make_tiny_model(gpu_root / "mid-qwen2_5_vl", preset="mid")
    port = free_port()
    argv = serve_command(str(model_dir), host="127.0.0.1", port=port, gpu_memory_utilization=0.5)
    argv = [sys.executable, "-m", "vllm.entrypoints.cli.main", *argv[1:]]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "1", "VLLM_SERVER_DEV_MODE": "1"}
    log = open(gpu_root / "vllm-serve.log", "w")
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        recipe = vllm_recipe(gpu_root / "server", tiny_setup, model_dir, engine="vllm-server",
                             overrides={"rollout": {"vllm": {"server_host": "127.0.0.1", "server_port": port}}})
        processor = load_processor(recipe.model.path)
        builder = make_input_builder(recipe, processor)
        model = load_policy(recipe.model, device="cuda:0").eval()
        engine = make_engine(recipe, Policy(model, builder))  # waits for the server, opens the NCCL group
        samples = load_split(recipe, "train")[:2]
        engine.sync_weights(model)
        synced = mismatch(engine, model, builder, samples)  # also checks the server's prompt tokens
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        stale = mismatch(engine, model, builder, samples)
        engine.sync_weights(model)
        resynced = mismatch(engine, model, builder, samples)
        report("vllm_server_sync", {"synced": synced, "stale": stale, "resynced": resynced,
                                    "push_seconds": engine.last_push.seconds,
                                    "push_mib": engine.last_push.bytes / 1024**2})
        assert stale > 10 * max(synced, resynced) and resynced < 0.05
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
