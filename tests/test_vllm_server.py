"""The vllm-server engine against a fake TRL client: chat requests with frames, rollouts, NCCL weight pushes."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe
from vllm_fakes import FakeVLLMClient, fake_vllm_module

from rlvid.config import load_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.rollout import SamplingParams, make_engine
from rlvid.rollout.vllm_outputs import PromptMismatchError
from rlvid.rollout.vllm_requests import LOGIT_SUPPRESS
from rlvid.rollout.vllm_server import VLLMServerEngine, eos_token_ids


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    s = make_tiny_setup(root)
    recipe = load_recipe(write_recipe(root / "r.yaml", s, root / "run"))
    processor = load_processor(recipe.model.path)
    return recipe, processor, make_input_builder(recipe, processor), load_split(recipe, "train")[:3]


@pytest.fixture
def client(setup):
    client = FakeVLLMClient()
    client.processor = setup[1]  # renders the chat and processes the frames as the server would
    client.eos_token_id = setup[1].tokenizer.eos_token_id
    return client


def test_generate_sends_one_chat_per_prompt_with_frames_and_video_settings(setup, client):
    recipe, processor, builder, samples = setup
    model = load_policy(recipe.model)
    engine = VLLMServerEngine(client, builder, model, is_main=True, seed=3)
    out = engine.generate(samples, 4, SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=6))
    assert len(client.chat_calls) == 3  # the server's prompt tokens matched the training processor's (checked)
    call = client.chat_calls[0]
    assert (call["n"], call["temperature"], call["top_p"], call["top_k"], call["max_tokens"], call["logprobs"]) == \
        (4, 0.9, 0.95, 0, 6, 0)
    kwargs = call["generation_kwargs"]
    assert kwargs["media_io_kwargs"]["video"]["do_sample_frames"] is False
    assert kwargs["mm_processor_kwargs"] == {"do_sample_frames": False, "do_resize": False,
                                             "cap_pixels_per_frame": False}
    video_pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert kwargs["logit_bias"][str(video_pad)] == LOGIT_SUPPRESS
    assert len({c["generation_kwargs"]["seed"] for c in client.chat_calls}) == 3
    assert sorted(out.prompt_index) == [0] * 4 + [1] * 4 + [2] * 4 and out.prompt_index[:4] == [0] * 4
    assert out.logprobs[0] == pytest.approx([-0.2 * (j + 1) for j in range(len(out.token_ids[0]))])
    assert out.truncated.count(True) == 6  # max_tokens reached without eos
    assert out.texts == processor.tokenizer.batch_decode(out.token_ids, skip_special_tokens=True)


def test_a_server_prompt_differing_from_training_is_an_error(setup, client):
    recipe, processor, builder, samples = setup
    engine = VLLMServerEngine(client, builder, load_policy(recipe.model), is_main=True)
    original = client._prompt_ids
    client._prompt_ids = lambda conv, kw: original(conv, kw)[:-1]
    with pytest.raises(PromptMismatchError, match=r"lengths \d+ vs \d+"):
        engine.generate(samples[:1], 2, SamplingParams(max_new_tokens=4))


def test_sync_streams_weights_in_buckets_inside_one_update_then_resets_caches(setup, client):
    recipe, _, builder, _ = setup
    model = load_policy(recipe.model)
    engine = VLLMServerEngine(client, builder, model, is_main=True, bucket_bytes=64 * 1024)
    engine.sync_weights(model)
    updates = client.calls.count("update_named_params")
    assert updates > 1 and "update_named_params:standalone" not in client.calls
    assert client.calls[0] == "start_weight_update" and client.calls[updates + 1] == "finish_weight_update"
    assert client.calls[updates + 2:] == ["reset_prefix_cache"]
    assert [u.rsplit("/", 1)[1] for u in client.session.posts] == ["reset_mm_cache", "reset_encoder_cache"]
    params = dict(model.named_parameters())
    assert set(client.received) == set(params)  # checkpoint names: the server's load_weights maps them
    for name, tensor in client.received.items():
        assert torch.equal(tensor, params[name])
    assert ("model.language_model.norm.weight", "float32", [64]) in client.metadata
    client.received.clear()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("model.language_model.layers.0."))
    engine.sync_weights(model)  # still full: the server rebuilds a partly received layer from the part alone
    assert set(client.received) == set(params)


def test_only_the_main_process_sends_but_every_process_iterates(setup, client):
    recipe, _, builder, _ = setup
    model = load_policy(recipe.model)
    engine = VLLMServerEngine(client, builder, model, is_main=False)
    engine.sync_weights(model)
    assert client.calls == [] and client.session.posts == [] and engine.last_push.tensors == len(list(
        model.parameters()))


def test_eos_ids_include_the_generation_config(setup):
    recipe, processor, _, _ = setup
    model = load_policy(recipe.model)
    assert set(eos_token_ids(model, processor.tokenizer)) == set(model.generation_config.eos_token_id)


def test_make_engine_connects_and_opens_the_nccl_group_on_the_main_process(setup, monkeypatch):
    recipe, processor, builder, samples = setup
    created = []

    class Client(FakeVLLMClient):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.kwargs = kwargs
            created.append(self)

    trl_client = types.ModuleType("trl.generation.vllm_client")
    trl_client.VLLMClient = Client
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
    monkeypatch.setitem(sys.modules, "trl.generation.vllm_client", trl_client)
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    recipe.rollout.engine = "vllm-server"
    recipe.rollout.vllm.server_host, recipe.rollout.vllm.server_port = "10.0.0.5", 8123
    try:
        engine = make_engine(recipe, Policy(load_policy(recipe.model), builder))
    finally:
        recipe.rollout.engine = "hf"
        recipe.rollout.vllm.server_host, recipe.rollout.vllm.server_port = "127.0.0.1", 8000
    (client,) = created
    assert isinstance(engine, VLLMServerEngine) and engine.client is client and engine.is_main
    assert client.kwargs["host"] == "10.0.0.5" and client.kwargs["server_port"] == 8123
    assert client.calls == ["init_communicator"]


def test_serve_command_enables_what_the_engine_relies_on():
    from rlvid.rollout.vllm_server import serve_command

    argv = serve_command("/models/m", port=8123, tensor_parallel_size=2)
    flags = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert argv[:3] == ["vllm", "serve", "/models/m"]
    assert flags["--weight-transfer-config"] == '{"backend": "nccl"}'  # TRL's VLLMClient pushes over NCCL
    assert flags["--logprobs-mode"] == "processed_logprobs"  # after temperature, as the trainer computes them
    assert flags["--limit-mm-per-prompt"] == '{"image": 0, "video": 1}'
    assert flags["--port"] == "8123" and flags["--tensor-parallel-size"] == "2"
    assert flags["--host"] == "127.0.0.1"  # loopback unless told otherwise
    assert {"--trust-request-mm-kwargs", "--no-mm-device-do-normalize", "--enable-prefix-caching"} <= set(argv)
    assert "--weight-transfer-config" not in serve_command("/models/m", weight_transfer=False)  # CPU: no NCCL
