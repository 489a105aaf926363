"""Streaming GRPO: log-probs and loss over the policy's own tokens only; a step runs end to end."""

import pytest
import torch

from rewards import compose_rewards
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import stream_chunks, teacher_trajectory
from rlvid.trainers.stream_credit import decision_starts
from rlvid.trainers.streaming_grpo import (
    StreamingGRPOConfig,
    StreamingGRPOTrainer,
    factored_logprobs,
    streaming_sft_step,
    trajectory_logprobs,
)

WORDS = "tell me when the red circle appears".split()


def _model_and_clips(n=2):
    vocab = StreamVocab(WORDS, max_chunks=8)
    return TinyStreamLM(vocab, seed=0), make_stream_clips(n, ("alert",), seed=0)


def _teacher(model, clip, said):
    return teacher_trajectory(model.vocab, clip.sample.question, stream_chunks(clip.frames, clip.fps, 1.0), said)


def test_mask_covers_decisions_and_responses_only():
    model, clips = _model_and_clips()
    t = _teacher(model, clips[0], {3: "red circle"})
    _, mask = trajectory_logprobs(model, [t])
    chosen = [tok for tok, m in zip(t.ids[1:], mask[0].bool().tolist(), strict=True) if m]
    v = model.vocab
    assert chosen == [v.silent] * 3 + v.encode("red circle") + [v.end] + [v.silent] * 4
    assert v.frame not in chosen and not any(v.tokens[i].startswith("<t=") for i in chosen)


def test_frames_and_prompt_carry_no_log_prob():
    model, clips = _model_and_clips()
    t = _teacher(model, clips[0], {5: "red circle"})
    logp, mask = trajectory_logprobs(model, [t])
    assert torch.all(logp[mask == 0] == 0)  # frames, time labels, question: outside the loss
    assert torch.all(torch.isfinite(logp)) and torch.all(logp[mask == 1] < 0)


def test_sft_step_lowers_the_loss_and_grpo_step_runs():
    model, clips = _model_and_clips(4)
    trajs = [_teacher(model, c, {int(c.sample.stream_events[0].due): "red circle"}) for c in clips]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = streaming_sft_step(model, opt, trajs)
    for _ in range(5):
        last = streaming_sft_step(model, opt, trajs)
    assert last < first
    trainer = StreamingGRPOTrainer(model, clips, compose_rewards(["stream_timing"]),
                                   StreamingGRPOConfig(num_generations=4, streams_per_step=2))
    before = [p.detach().clone() for p in model.parameters()]
    out = trainer.train_step(0)
    assert set(out) >= {"loss", "reward", "rewards/stream_timing", "policy_tokens"}
    assert out["policy_tokens"] >= 8  # one decision per chunk at least
    changed = any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    assert changed or out["loss"] == 0.0  # a group with equal rewards has zero advantage
    assert 0.0 <= trainer.evaluate(clips)["timing_f1"] <= 1.0
    plain = StreamingGRPOTrainer(model, clips, compose_rewards(["stream_timing"]),
                                 StreamingGRPOConfig(num_generations=4, streams_per_step=2, credit="trajectory"))
    assert plain.train_step(1)["policy_tokens"] >= 8  # one advantage per trajectory: plain GRPO
    with pytest.raises(ValueError, match="streaming credit must be one of"):
        StreamingGRPOConfig(credit="token")


def test_factored_logprobs_split_a_first_word_into_speaking_and_the_word():
    model, clips = _model_and_clips()
    t = _teacher(model, clips[0], {3: "red circle"})
    logp, _ = trajectory_logprobs(model, [t])
    starts = decision_starts([t], model.vocab, len(t.ids) - 1)
    decision, words, decision_mask, word_mask = factored_logprobs(model, [t], starts)
    assert int(decision_mask.sum()) == 8 and int(word_mask.sum()) == 3  # 8 decisions; red, circle, <end>
    said = word_mask == 1  # log p(word) = log P(speak) + log p(word | speak)
    assert torch.allclose((decision + words)[said], logp[said], atol=1e-5)
    silent = (decision_mask == 1) & ~said  # not speaking: <silent> or <end>, at least p(<silent>)
    assert torch.all(decision[silent] >= logp[silent] - 1e-6) and int(silent.sum()) == 7
    assert torch.all(decision[decision_mask == 1] < 0) and torch.all(decision[decision_mask == 0] == 0)
