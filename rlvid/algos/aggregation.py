"""Reduce a masked [B, T] per-token loss to the scalar that is backpropagated.

Modes (the recipe's `trainer.loss_agg`), named for what they compute; the papers' names are aliases:
- "seq_mean_token_mean" (alias "grpo"): mean over the tokens of each sequence, then mean over
  sequences (GRPO paper).
- "token_mean" (alias "dapo"): sum over all tokens / number of tokens, so long completions are
  not down-weighted (DAPO).
- "seq_mean_token_sum_norm" (alias "dr_grpo"): sum over all tokens / (number of sequences *
  max_completion_length), a constant per-sequence length, so no length bias at all (Dr.GRPO).

Each mode is one registered function returning (numerator, count): this micro-batch's summed
loss and its share of the denominator, in the mode's unit (sequences, tokens, or sequences *
max_completion_length). A plugin mode (`pkg.mod:fn`, `./file.py:fn`) has the same signature.

Exactness under gradient accumulation and data parallelism. Without `normalizer`, the loss is
normalised by this micro-batch's own count, and averaging micro-batch losses is NOT the
full-batch loss when micro-batches hold different numbers of tokens. For the exact gradient,
the trainer sums `local_normalizer(...)` over every micro-batch of the optimizer step and over
all processes (all-reduce) and passes that sum as `normalizer` to every micro-batch. Then:

    sum over all micro-batches on all processes of aggregate_loss(...) == full-batch loss.

So the trainer must SUM these losses, not average them: do not divide by the number of
accumulation steps, and since DDP/FSDP average gradients over the W processes, multiply each
micro-batch loss by W before backward (or pass normalizer / W).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvid.algos.logprobs import masked_mean, masked_sum
from rlvid.algos.registry import Registry

Aggregation = Callable[[torch.Tensor, torch.Tensor, int | None], tuple[torch.Tensor, torch.Tensor]]

LOSS_AGGREGATIONS: Registry[Aggregation] = Registry("loss aggregation", entry_point_group="rlvid.loss_aggregations")


def aggregate_loss(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "seq_mean_token_mean",
    normalizer: float | torch.Tensor | None = None,
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """Scalar loss from `token_loss` [B, T] over `mask` [B, T] (see the module docstring for `normalizer`)."""
    numerator, count = LOSS_AGGREGATIONS.get(mode)(token_loss, mask, max_completion_length)
    if normalizer is None:
        return numerator / count.clamp(min=1.0)
    return numerator / normalizer


def local_normalizer(mode: str, mask: torch.Tensor, max_completion_length: int | None = None) -> torch.Tensor:
    """This micro-batch's share of the denominator; sum it over micro-batches and processes."""
    return LOSS_AGGREGATIONS.get(mode)(mask.new_zeros(mask.shape, dtype=torch.float32), mask, max_completion_length)[1]


def _num_sequences(mask: torch.Tensor) -> torch.Tensor:
    return torch.tensor(float(mask.shape[0]), device=mask.device)


@LOSS_AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(token_loss: torch.Tensor, mask: torch.Tensor, max_completion_length: int | None):
    return masked_mean(token_loss, mask, dim=-1).sum(), _num_sequences(mask)


@LOSS_AGGREGATIONS.register("token_mean")
def token_mean(token_loss: torch.Tensor, mask: torch.Tensor, max_completion_length: int | None):
    return masked_sum(token_loss, mask), mask.bool().sum().to(torch.float32)


@LOSS_AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(token_loss: torch.Tensor, mask: torch.Tensor, max_completion_length: int | None):
    if not max_completion_length or max_completion_length < 1:
        raise ValueError("loss aggregation 'seq_mean_token_sum_norm' (dr_grpo) needs max_completion_length >= 1 "
                         "(the rollout's max_new_tokens)")
    return masked_sum(token_loss, mask), _num_sequences(mask) * max_completion_length


LOSS_AGGREGATIONS.alias("grpo", "seq_mean_token_mean")
LOSS_AGGREGATIONS.alias("dapo", "token_mean")
LOSS_AGGREGATIONS.alias("dr_grpo", "seq_mean_token_sum_norm")
