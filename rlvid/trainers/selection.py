"""The online group-selection hook of a GRPO step (data_selection plugs its strategies in here).

`select_groups` is called between rewards and advantages with `selection.online`. "none" (the
default) returns the batch unchanged; "zero_variance" drops groups whose rewards are all equal
(they carry no gradient under group-normalised advantages); "dynamic_sampling" (DAPO's refill) is
a later issue and raises until then.
"""

from __future__ import annotations

import torch

from rlvid.rollout import Rollouts


def select_groups(prompts: list, rollouts: Rollouts, rewards: torch.Tensor, mode: str = "none"
                  ) -> tuple[list, Rollouts, torch.Tensor]:
    """(prompts, rollouts, rewards) after online selection; rollouts' prompt_index stays valid for `prompts`."""
    if mode == "none":
        return prompts, rollouts, rewards
    if mode == "zero_variance":
        keep = []
        for g in sorted(set(rollouts.prompt_index)):
            rows = [r for r, p in enumerate(rollouts.prompt_index) if p == g]
            if float(rewards[rows].max() - rewards[rows].min()) > 0:
                keep += rows
        return prompts, rollouts.select(keep), rewards[keep]
    raise NotImplementedError(f"selection.online={mode!r} is not implemented yet (a later issue); use none")
