"""Parsing vLLM's answers into Rollouts: grouping, order, log-probs, truncation, texts, prompt checks."""

from __future__ import annotations

import math

import pytest
from tiny_setup import make_tiny_setup
from vllm_fakes import FakeCompletion, FakeLogprob, FakeRequestOutput

from rlvid.models.loading import load_processor
from rlvid.rollout.base import Rollouts
from rlvid.rollout.vllm_outputs import (
    PromptMismatchError,
    check_prompt_ids,
    concat_rollouts,
    parse_chat_result,
    parse_request_outputs,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_processor(make_tiny_setup(tmp_path_factory.mktemp("vllm-out"))["model"]).tokenizer


def _completion(index, ids, finish, logps=None):
    lps = None if logps is None else [{t: FakeLogprob(lp), t + 1: FakeLogprob(-9.0)} for t, lp in zip(ids, logps,
                                                                                                     strict=True)]
    return FakeCompletion(index, "ignored", ids, None, lps, finish)


def test_request_outputs_become_grouped_rollouts_with_logprobs_and_truncation(tokenizer):
    eos = tokenizer.eos_token_id
    outputs = [
        FakeRequestOutput("0", "p", [1], [_completion(1, [30, 31, eos], "stop", [-0.5, -0.25, -0.125]),
                                          _completion(0, [40, 41, 42, 43], "length", [-1.0, -2.0, -3.0, -4.0])]),
        FakeRequestOutput("1", "p", [1], [_completion(0, [50, eos], "stop", [-0.1, -0.2]),
                                          _completion(1, [60, 61, 62, 63], "length", [-0.3, -0.4, -0.5, -0.6])]),
    ]
    r = parse_request_outputs(outputs, 2, tokenizer)
    assert r.prompt_index == [0, 0, 1, 1]
    assert r.token_ids == [[40, 41, 42, 43], [30, 31, eos], [50, eos], [60, 61, 62, 63]]  # sorted by index
    assert r.logprobs == [[-1.0, -2.0, -3.0, -4.0], [-0.5, -0.25, -0.125], [-0.1, -0.2], [-0.3, -0.4, -0.5, -0.6]]
    assert r.truncated == [True, False, False, True]
    assert r.texts == tokenizer.batch_decode(r.token_ids, skip_special_tokens=True)  # as the hf engine decodes
    assert r.select([3, 0]).logprobs == [[-0.3, -0.4, -0.5, -0.6], [-1.0, -2.0, -3.0, -4.0]]


def test_outputs_without_logprobs_give_none_and_wrong_counts_raise(tokenizer):
    outputs = [FakeRequestOutput("0", "p", [1], [_completion(0, [30, 31], "length")])]
    assert parse_request_outputs(outputs, 1, tokenizer).logprobs is None
    with pytest.raises(ValueError, match="prompt 0: vLLM returned 1 completions, expected 2"):
        parse_request_outputs(outputs, 2, tokenizer)


def test_a_sampled_token_without_logprob_is_an_error(tokenizer):
    bad = FakeCompletion(0, "", [30, 31], None, [{30: FakeLogprob(-1.0)}, {99: FakeLogprob(-1.0)}], "length")
    with pytest.raises(ValueError, match="no log-prob for sampled token 31 at position 1"):
        parse_request_outputs([FakeRequestOutput("0", "p", [1], [bad])], 1, tokenizer)


def test_chat_result_picks_the_sampled_tokens_logprob_and_infers_truncation(tokenizer):
    eos = tokenizer.eos_token_id
    result = {
        "prompt_ids": [[1, 2, 3]],
        "completion_ids": [[30, 31, 32], [40, eos], [50, 51, eos]],
        # top-k style entries: the sampled token is not always first; TRL turns NaN into None
        "logprobs": [[[-0.1, -3.0], [-0.2], [-0.3]], [[-0.5], [None]], [[-0.6], [-0.7], [-0.8]]],
        "logprob_token_ids": [[[30, 7], [31], [32]], [[40], [eos]], [[50], [51], [eos]]],
    }
    r = parse_chat_result(result, 4, 3, tokenizer, max_tokens=3, eos_token_ids=[eos])
    assert r.prompt_index == [4, 4, 4]
    assert r.logprobs[0] == [-0.1, -0.2, -0.3] and r.logprobs[2] == [-0.6, -0.7, -0.8]
    assert r.logprobs[1][0] == -0.5 and math.isnan(r.logprobs[1][1])
    assert r.truncated == [True, False, False]  # 3 tokens at max_tokens=3 ending in eos is a finished answer
    result["logprob_token_ids"][0][1] = [99]
    with pytest.raises(ValueError, match="prompt 4: the server returned no log-prob for sampled token 31 at 1"):
        parse_chat_result(result, 4, 3, tokenizer, max_tokens=3, eos_token_ids=[eos])


def test_concat_keeps_order_and_drops_logprobs_if_one_part_has_none():
    a = Rollouts([0], [[1]], ["a"], logprobs=[[-1.0]], truncated=[False])
    b = Rollouts([1], [[2]], ["b"], logprobs=[[-2.0]], truncated=[True])
    both = concat_rollouts([a, b])
    assert both.prompt_index == [0, 1] and both.logprobs == [[-1.0], [-2.0]] and both.truncated == [False, True]
    assert concat_rollouts([a, Rollouts([1], [[2]], ["b"], truncated=[True])]).logprobs is None


def test_prompt_check_names_the_first_differing_position(tokenizer):
    check_prompt_ids([5, 6, 7], [5, 6, 7], tokenizer)
    with pytest.raises(PromptMismatchError, match=r"clip-3: .* at position 2 \(lengths 4 vs 3\)"):
        check_prompt_ids([5, 6, 7], [5, 6, 8, 9], tokenizer, "clip-3")
