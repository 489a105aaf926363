"""The hf rollout engine and the shared log-prob row layout, on the tiny model."""

from __future__ import annotations

import sys

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.config import load_recipe
from rlvid.data.recipe_data import load_split, make_input_builder
from rlvid.models.loading import load_policy, load_processor
from rlvid.policy import Policy
from rlvid.policy.encode import collate, encode_prompts
from rlvid.policy.logprobs import completion_logprobs
from rlvid.rollout import EngineNotAvailableError, HFRolloutEngine, SamplingParams, make_engine, strip_after_eos


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout")
    s = make_tiny_setup(root)
    recipe = load_recipe(write_recipe(root / "r.yaml", s, root / "run"))
    processor = load_processor(recipe.model.path)
    model = load_policy(recipe.model)
    return recipe, model, processor, make_input_builder(recipe, processor), load_split(recipe, "train")[:3]


def test_generate_groups_g_completions_per_prompt_and_cuts_after_eos(setup):
    recipe, model, processor, builder, samples = setup
    torch.manual_seed(0)
    out = HFRolloutEngine(Policy(model, builder)).generate(samples, 4, SamplingParams(max_new_tokens=12))
    assert out.prompt_index == [0] * 4 + [1] * 4 + [2] * 4
    eos, pad = processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id
    for ids, text, cut in zip(out.token_ids, out.texts, out.truncated, strict=True):
        assert 1 <= len(ids) <= 12
        assert eos not in ids[:-1]  # nothing after the first eos
        assert cut == (ids[-1] != eos)
        assert text == processor.tokenizer.decode(ids, skip_special_tokens=True)
        if not cut:
            assert pad not in ids
    video_pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert all(video_pad not in ids for ids in out.token_ids)  # placeholders are never sampled


def test_strip_after_eos():
    assert strip_after_eos([5, 6, 2, 9, 9], 2) == [5, 6, 2]
    assert strip_after_eos([5, 6], 2) == [5, 6]
    assert strip_after_eos([7, 3, 1], [1, 3]) == [7, 3]


def test_vllm_engines_raise_a_clear_error_without_vllm(setup, monkeypatch):
    recipe, model, processor, builder, _ = setup
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed (scripts/setup.sh installs it)
    recipe.rollout.engine = "vllm"
    with pytest.raises(EngineNotAvailableError, match=r"rlvid\[vllm\]"):
        make_engine(recipe, Policy(model, builder))
    recipe.rollout.engine = "hf"
    assert isinstance(make_engine(recipe, Policy(model, builder)), HFRolloutEngine)


def test_collated_rows_give_the_same_logprobs_as_the_builder(setup):
    """Prompts encoded once and repeated per completion == processor run on every row."""
    _, model, processor, builder, samples = setup
    tok = processor.tokenizer
    completions = ["<answer>1.0 to 2.0</answer>", "<think>x</think>", "<answer>3 to 4</answer>"]
    ids = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in completions]
    encoded = encode_prompts(builder, samples)
    order = [2, 0, 0, 1]  # repeated and out of order rows
    inputs, mask = collate([encoded[i] for i in order], [ids[i] for i in order], tok.pad_token_id)
    ref_inputs, ref_mask = builder.prompt_with_completions([samples[i] for i in order], [completions[i] for i in order])
    with torch.no_grad():
        a, am = completion_logprobs(model, inputs, mask)
        b, bm = completion_logprobs(model, ref_inputs, ref_mask)
    assert torch.equal(am, bm)
    torch.testing.assert_close(a[am], b[bm], rtol=1e-5, atol=1e-5)
    assert int(am.sum()) == sum(len(ids[i]) for i in order)
