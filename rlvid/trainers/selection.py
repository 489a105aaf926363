"""Online group selection inside a GRPO step (`selection.online`), on data_selection's filters.

"none" keeps the batch; "zero_variance" drops groups whose G rewards are all equal (zero advantage
everywhere: a forward/backward that teaches nothing); "dynamic_sampling" (DAPO) also drops them and
keeps generating on extra prompts until the batch again holds as many informative groups as it had
prompts, up to `selection.max_tries` tries. Groups stay whole on the process that generated them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from data_selection.online import fill_informative_groups, zero_variance
from rlvid.rollout import Rollouts

Batch = tuple[list, Rollouts, torch.Tensor]


def select_groups(prompts: list, rollouts: Rollouts, rewards: torch.Tensor, mode: str = "none"
                  ) -> tuple[list, Rollouts, torch.Tensor, dict[str, float]]:
    """(prompts, rollouts, rewards, metrics) after filtering; rollouts' prompt_index stays valid for `prompts`."""
    if mode == "none":
        return prompts, rollouts, rewards, {}
    if mode in ("zero_variance", "dynamic_sampling"):
        sel = zero_variance(rewards, rollouts.prompt_index)
        return prompts, rollouts.select(sel.rows), rewards[sel.rows], sel.metrics
    raise ValueError(f"selection.online={mode!r}; allowed: none, zero_variance, dynamic_sampling")


def refill_groups(first: Batch, generate_more: Callable[[int], Batch], max_tries: int,
                  done_everywhere: Callable[[bool], bool] | None = None) -> tuple[list, Rollouts, torch.Tensor, dict]:
    """DAPO's dynamic sampling: keep `first`'s informative groups, then call `generate_more(try)` for
    more until there are len(first prompts) of them or `max_tries` tries (the first included) are spent."""
    target = len(first[0])
    fill = fill_informative_groups(lambda attempt: first if attempt == 0 else generate_more(attempt),
                                   target, max_tries, done_everywhere=done_everywhere)
    return fill.prompts, fill.rollouts, torch.as_tensor(fill.rewards, dtype=torch.float32), fill.metrics
