"""Rollout-engine log-probs in the training layout (the correction itself: `rlvid.algos.rollout_correction`).

A sampling engine (vLLM) computes its token log-probs with other kernels, dtype paths and
batching than the trainer, so pi_rollout != pi_old even with identical weights; GRPO lays the
engine's log-probs out like its own completion mask to measure and correct that mismatch.
"""

from __future__ import annotations

import torch


def rollout_logprob_rows(mask: torch.Tensor, logprobs: list[list[float]]) -> torch.Tensor:
    """[B, T] float32 tensor with row r's rollout log-probs at the True positions of `mask[r]` (0 elsewhere).

    `mask` is the completion mask of a collated micro-batch (`rlvid.policy.encode.collate`), whose
    True positions are exactly the completion tokens in order, so log-prob t lands on token t.
    """
    out = torch.zeros(mask.shape, dtype=torch.float32)
    for r, row in enumerate(logprobs):
        positions = mask[r].nonzero().flatten()
        if positions.numel() != len(row):
            raise ValueError(f"row {r}: {len(row)} rollout log-probs for {positions.numel()} completion tokens")
        out[r, positions] = torch.tensor(row, dtype=torch.float32)
    return out
