"""GRPO over whole streaming trajectories.

One step: for each stream of the batch, G trajectories (shared KV cache, see
rlvid/rollout/streaming.py; all streams in one batched rollout when the model has
`forward_batch`, rlvid/rollout/streaming_batched.py); their transcripts are scored by the
recipe's rewards through `rewards.score` (`stream_timing`, `stream_content`, ...); advantages per
decision (trainers/stream_credit.py) or per group of G (`algos.compute_advantages`); then one
forward per trajectory batch recomputes the log-probs and
the clipped policy loss (`algos.compute_policy_loss`) is taken over the policy's own tokens only:
its silence decisions and its responses, never the frames, time labels or question
(`StreamTrajectory.policy_mask`). Each batch of rollouts is used for one update, so the old
log-probs are the current ones (ratio 1; the clip matters only with more updates per batch).

This trainer drives the tiny streaming model (`rlvid.models.stream_lm`) or a Qwen-VL policy
(`rlvid.policy.stream_vl.QwenVLStream`, from Python). `rlvid train` runs its step inside `trainers/loop.py`
(trainers/streaming_loop.py hands it the loop's batch and update); the evidence script calls it directly.
`streaming_sft_step` is the warm start: teacher-forced cross-entropy on the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewards import RewardSet, score
from rlvid.algos.advantages import compute_advantages
from rlvid.algos.policy_loss import compute_policy_loss
from rlvid.eval.streaming_metrics import streaming_metrics
from rlvid.rollout.streaming import (
    StreamSampling,
    StreamTrajectory,
    allowed_logits,
    stream_chunks,
)
from rlvid.rollout.streaming_batched import rollouts_for
from rlvid.trainers.stream_credit import decision_starts, reward_to_go, tree_advantages


@dataclass
class StreamingGRPOConfig:
    num_generations: int = 8
    streams_per_step: int = 8
    lr: float = 3e-3
    temperature: float = 1.0
    max_response_tokens: int = 3
    stream_chunk_seconds: float = 1.0
    epsilon: float = 0.2
    # Dr.GRPO's sum over a trajectory's tokens / (trajectories x chunks): with a mean per trajectory, the
    # negative advantages of a trajectory that speaks after every chunk were spread thin over its many
    # tokens, and measured runs drifted to spamming while the reward fell.
    loss_agg: str = "seq_mean_token_sum_norm"
    seed: int = 0
    credit: str = "decision"  # "decision": per-decision reward-to-go (trainers/stream_credit.py); "trajectory"
    adv_scale: str = "group"  # algos.compute_advantages scale: group | batch | none
    word_rewards: tuple[str, ...] = ("stream_content",)  # reward labels that value a response's further words

    def __post_init__(self) -> None:
        if self.credit not in CREDITS:
            raise ValueError(f"streaming credit must be one of {list(CREDITS)}, got {self.credit!r}")


CREDITS = ("decision", "trajectory")


def next_token_logprobs(model, trajs: Sequence[StreamTrajectory]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs [B, T-1, V] of the next token over the allowed vocabulary (one padded forward), the targets
    [B, T-1] and the policy mask [B, T-1] (bool)."""
    if hasattr(model, "trajectory_logits"):  # lays out its own batch: M-RoPE positions, pixels (policy/stream_vl.py)
        return _own_layout_logprobs(model, trajs)
    embeds = [model.embed(t.ids, t.frames)[0] for t in trajs]
    longest = max(len(e) for e in embeds)
    batch = torch.zeros(len(trajs), longest, embeds[0].shape[-1], dtype=embeds[0].dtype)
    attention = torch.zeros(len(trajs), longest, dtype=torch.long)
    ids = torch.full((len(trajs), longest), model.vocab.pad, dtype=torch.long)
    mask = torch.zeros(len(trajs), longest, dtype=torch.bool)
    for i, (t, e) in enumerate(zip(trajs, embeds, strict=True)):
        batch[i, :len(e)] = e
        attention[i, :len(e)] = 1
        ids[i, :len(e)] = torch.tensor(t.ids)
        mask[i, :len(e)] = torch.tensor(t.policy_mask)
    logits, _ = model(batch, attention_mask=attention)
    return torch.log_softmax(allowed_logits(logits[:, :-1].float(), model.vocab), -1), ids[:, 1:], mask[:, 1:]


def _own_layout_logprobs(model, trajs: Sequence[StreamTrajectory]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`next_token_logprobs` of a model whose `trajectory_logits(trajs)` returns [B, T, V] in the layout of `ids`."""
    logits = model.trajectory_logits(trajs)
    ids = torch.full(logits.shape[:2], model.vocab.pad, dtype=torch.long)
    mask = torch.zeros(logits.shape[:2], dtype=torch.bool)
    for i, t in enumerate(trajs):
        ids[i, :len(t.ids)] = torch.tensor(t.ids)
        mask[i, :len(t.ids)] = torch.tensor(t.policy_mask)
    return torch.log_softmax(allowed_logits(logits[:, :-1].float(), model.vocab), -1), ids[:, 1:], mask[:, 1:]


def trajectory_logprobs(model, trajs: Sequence[StreamTrajectory]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B, T-1] of each next token of `trajs` (one padded forward) and the policy mask [B, T-1]."""
    logp, target, policy = next_token_logprobs(model, trajs)
    token_logp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return torch.where(policy, token_logp, torch.zeros_like(token_logp)), policy.float()


def factored_logprobs(model, trajs: Sequence[StreamTrajectory], starts: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The policy's tokens as two choices: log P(speak or not) at decision starts, log P(word | speaking) after.

    A decision's first token is `<silent>`/`<end>` (not speaking) or a word, so
    log p(word) = log P(speak) + log p(word | speak). Returns (decision logp, word logp, decision
    mask, word mask), each [B, T-1]; `starts` marks the decision starts (`decision_starts`).
    """
    logp, target, policy = next_token_logprobs(model, trajs)
    vocab = model.vocab
    token = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    stop = torch.logsumexp(logp[..., [vocab.silent, vocab.end]], -1)
    speak = torch.log((-torch.expm1(stop)).clamp(min=1e-12))
    stopped = (target == vocab.silent) | (target == vocab.end)
    decision_mask = policy & starts
    word_mask = policy & ~(starts & stopped)
    zero = torch.zeros_like(token)
    decision = torch.where(decision_mask, torch.where(stopped, stop, speak), zero)
    words = torch.where(word_mask, torch.where(starts, token - speak, token), zero)
    return decision, words, decision_mask.float(), word_mask.float()


def streaming_sft_step(model, optimizer: torch.optim.Optimizer, trajs: Sequence[StreamTrajectory]) -> float:
    """One teacher-forced step: mean negative log-prob of the policy tokens of `trajs`."""
    logp, mask = trajectory_logprobs(model, trajs)
    loss = -(logp * mask).sum() / mask.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


class StreamingGRPOTrainer:
    """GRPO on `clips` (`rlvid.data.synthetic_streaming.StreamClip`) with `reward_set` on their transcripts."""

    def __init__(self, model, clips: Sequence, reward_set: RewardSet, config: StreamingGRPOConfig):
        self.model, self.clips, self.reward_set, self.config = model, list(clips), reward_set, config
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(config.seed)

    def rollouts(self, clips: Sequence, n: int, sampling: StreamSampling) -> list[StreamTrajectory]:
        self.model.eval()
        return rollouts_for(self.model, [clip.sample.question for clip in clips],
                            [self.chunks_of(clip) for clip in clips], n, sampling, self.generator)

    def chunks_of(self, clip) -> list:
        return stream_chunks(torch.as_tensor(clip.frames), clip.fps, self.config.stream_chunk_seconds)

    def train_step(self, step: int, clips: Sequence | None = None) -> dict[str, float]:
        """One GRPO step on `clips` (default: the next `streams_per_step` of `self.clips`, cycling; the shared loop
        hands its own batch, trainers/streaming_loop.py)."""
        c = self.config
        if clips is None:
            start = (step * c.streams_per_step) % len(self.clips)
            clips = [self.clips[(start + i) % len(self.clips)] for i in range(c.streams_per_step)]
        trajs = self.rollouts(clips, c.num_generations, StreamSampling(c.temperature, c.max_response_tokens))
        self.model.train()
        loss, rewards, token_counts = self.policy_loss(clips, trajs)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        total = rewards.total
        out = {"loss": float(loss.detach()), "reward": sum(total) / len(total),
               "policy_tokens": token_counts,
               "responses_per_stream": sum(len(t.responses) for t in trajs) / len(trajs)}
        out.update({f"rewards/{k}": sum(v or 0.0 for v in vals) / len(vals) for k, vals in rewards.scores.items()})
        sampled = self.metrics_of(trajs, [clip for clip in clips for _ in range(c.num_generations)])
        out.update({f"sampled/{k}": v for k, v in sampled.items() if k in ("timing_f1", "timing_recall")})
        return out

    def policy_loss(self, clips: Sequence, trajs: Sequence[StreamTrajectory]):
        """The GRPO loss of `trajs` (num_generations per clip, clip-major), their rewards (`rewards.score`) and
        the policy tokens per trajectory."""
        c = self.config
        samples = [clip.sample for clip in clips for _ in range(c.num_generations)]
        rewards = score(self.reward_set, samples, [t.transcript for t in trajs])
        total = torch.tensor(rewards.total, dtype=torch.float32)
        length = max(len(t.ids) for t in trajs) - 1
        starts = decision_starts(trajs, self.model.vocab, length)
        decision, words, decision_mask, word_mask = factored_logprobs(self.model, trajs, starts)
        if c.credit == "decision":
            ends = [[ch.end for ch in self.chunks_of(clip)] for clip in clips for _ in range(c.num_generations)]
            rtg, word_rtg = reward_to_go(self.reward_set, samples, trajs, ends, c.word_rewards)
            adv_decision, adv_words = tree_advantages(rtg, word_rtg, trajs, self.model.vocab, c.num_generations,
                                                      length, c.adv_scale)
            advantages = torch.cat([adv_decision, adv_words], 1)
        else:
            advantages = compute_advantages(total, num_generations=c.num_generations, scale=c.adv_scale)
        logp, mask = torch.cat([decision, words], 1), torch.cat([decision_mask, word_mask], 1)
        chunks = max(len(self.chunks_of(clip)) for clip in clips)
        loss, _ = compute_policy_loss(logp, logp.detach(), advantages, mask, epsilon=c.epsilon,
                                      loss_agg=c.loss_agg, max_completion_length=chunks)
        return loss, rewards, float((decision_mask + word_mask).sum() / len(trajs))

    def greedy_sampling(self) -> StreamSampling:
        return StreamSampling(0.0, self.config.max_response_tokens)

    def metrics_of(self, trajs: Sequence[StreamTrajectory], clips: Sequence, tolerance: float = 1.0) -> dict:
        return streaming_metrics([t.transcript for t in trajs], [c.sample for c in clips], tolerance=tolerance)

    @torch.no_grad()
    def evaluate(self, clips: Sequence, tolerance: float = 1.0) -> dict[str, float]:
        """Streaming metrics of greedy rollouts (one per clip)."""
        return self.metrics_of(self.rollouts(clips, 1, self.greedy_sampling()), clips, tolerance)
