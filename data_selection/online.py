"""Online group selection inside a GRPO step: drop uninformative groups, or refill the batch (DAPO).

Under group-normalised advantages a group whose G rewards are all equal has zero advantage
everywhere: it costs a forward/backward and teaches nothing. `zero_variance` drops such groups;
`fill_informative_groups` keeps generating (new prompts each try) until the batch holds the target
number of informative groups or `max_tries` is spent, as DAPO's dynamic sampling does.

Both work on whole groups: a row's group is its `prompt_index`. The trainer shards prompts, not
completions, so every group lives on one process and each process filters its own groups; with
`group_size` set, a group that is not whole here raises instead of being judged on part of it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger("data_selection")

Rewards = Sequence[float] | torch.Tensor


@dataclass
class GroupSelection:
    """Kept groups (ids in first-seen order), their rows (ascending), and metrics to log."""

    groups: list[int]
    rows: list[int]
    metrics: dict[str, float] = field(default_factory=dict)


def zero_variance(rewards: Rewards, group_index: Sequence[int], *, group_size: int | None = None,
                  atol: float = 0.0) -> GroupSelection:
    """Keep the groups whose rewards are not all equal (max - min > atol).

    `rewards[r]` is row r's total reward and `group_index[r]` its group (Rollouts.prompt_index).
    Metrics: selection/groups, selection/kept_groups, selection/filtered_fraction (groups dropped / groups).
    """
    values = rewards.tolist() if isinstance(rewards, torch.Tensor) else list(rewards)
    if len(values) != len(group_index):
        raise ValueError(f"{len(values)} rewards for {len(group_index)} rows")
    rows_of: dict[int, list[int]] = {}
    for row, g in enumerate(group_index):
        rows_of.setdefault(int(g), []).append(row)
    if group_size is not None:
        split = {g: len(rows) for g, rows in rows_of.items() if len(rows) != group_size}
        if split:
            raise ValueError(f"groups {sorted(split)[:3]} have {sorted(set(split.values()))} of {group_size} rows "
                             "on this process: a group must not be split across processes")
    kept = [g for g, rows in rows_of.items() if max(values[r] for r in rows) - min(values[r] for r in rows) > atol]
    rows = sorted(r for g in kept for r in rows_of[g])
    n = len(rows_of)
    metrics = {"selection/groups": float(n), "selection/kept_groups": float(len(kept)),
               "selection/filtered_fraction": (n - len(kept)) / n if n else 0.0}
    return GroupSelection(kept, rows, metrics)


@dataclass
class FillResult:
    """The batch dynamic sampling assembled: prompts, their rollouts (prompt_index renumbered into
    `prompts`) and rewards, with how much it cost."""

    prompts: list
    rollouts: Any
    rewards: Rewards
    tries: int
    rollouts_spent: int
    cap_hit: bool
    metrics: dict[str, float] = field(default_factory=dict)


GenerateFn = Callable[[int], tuple[list, Any, Rewards]]


def fill_informative_groups(
    generate_fn: GenerateFn,
    target_groups: int,
    max_tries: int,
    *,
    keep_fn: Callable[[Rewards, Sequence[int]], GroupSelection] = zero_variance,
    done_everywhere: Callable[[bool], bool] | None = None,
) -> FillResult:
    """Call `generate_fn(try)` -> (prompts, rollouts, rewards) until `target_groups` informative groups.

    Each try's groups are filtered with `keep_fn`; kept groups accumulate in generation order and
    the batch is cut to exactly `target_groups`. After `max_tries` tries with fewer, a warning is
    logged and the groups found so far are returned (possibly none: the caller skips the step).
    `rollouts` is a dataclass with `prompt_index` and `select(rows)` (rlvid's Rollouts); rewards a
    list or tensor aligned with its rows.

    With several processes and a sharded model (FSDP, ZeRO-3) every process must call generate the
    same number of times: pass `done_everywhere(done_here) -> bool`, true only when every process is
    done (e.g. an all-reduce of `done_here` with MIN). A process that is done keeps generating with
    the others then and discards the extra groups (they still count as rollouts spent).
    """
    if target_groups < 0 or max_tries < 1:
        raise ValueError(f"need target_groups >= 0 and max_tries >= 1, got {target_groups}, {max_tries}")
    prompts_out: list = []
    parts: list[tuple[Any, Rewards]] = []
    template = None
    tries = spent = generated = informative = 0
    for attempt in range(max_tries):
        prompts, rollouts, rewards = generate_fn(attempt)
        tries += 1
        spent += len(rollouts.prompt_index)
        if template is None:
            template = rollouts
        sel = keep_fn(rewards, rollouts.prompt_index)
        generated += int(sel.metrics.get("selection/groups", len(set(rollouts.prompt_index))))
        informative += len(sel.groups)
        take = sel.groups[: max(target_groups - len(prompts_out), 0)]
        if take:
            new_id = {g: len(prompts_out) + j for j, g in enumerate(take)}
            rows = [r for r, g in enumerate(rollouts.prompt_index) if g in new_id]
            part = rollouts.select(rows)
            part.prompt_index = [new_id[g] for g in part.prompt_index]
            parts.append((part, _take(rewards, rows)))
            prompts_out += [prompts[g] for g in take]
        done = len(prompts_out) >= target_groups
        if done_everywhere(done) if done_everywhere is not None else done:
            break
    cap_hit = len(prompts_out) < target_groups
    if cap_hit:
        logger.warning("dynamic sampling: %d of %d informative groups after max_tries=%d tries (%d rollouts); "
                       "training on what there is", len(prompts_out), target_groups, max_tries, spent)
    rollouts_out = _concat([p for p, _ in parts]) if parts else template.select([])
    rewards_out = _cat([r for _, r in parts], like=rewards)
    metrics = {
        "selection/tries": float(tries),
        "selection/rollouts_spent": float(spent),
        "selection/kept_groups": float(len(prompts_out)),
        "selection/filtered_fraction": (generated - informative) / generated if generated else 0.0,
        "selection/cap_hit": float(cap_hit),
    }
    return FillResult(prompts_out, rollouts_out, rewards_out, tries, spent, cap_hit, metrics)


def _take(rewards: Rewards, rows: list[int]) -> Rewards:
    if isinstance(rewards, torch.Tensor):
        return rewards[torch.tensor(rows, dtype=torch.long, device=rewards.device)]
    return [rewards[r] for r in rows]


def _cat(parts: list[Rewards], like: Rewards) -> Rewards:
    if isinstance(like, torch.Tensor):
        return torch.cat(parts) if parts else like[:0]
    return [x for p in parts for x in p]


def _concat(parts: list[Any]) -> Any:
    """Rollouts-like dataclasses stacked row-wise: list fields are concatenated, all-None fields stay None."""
    n = sum(len(p.prompt_index) for p in parts)
    values = {}
    for f in dataclasses.fields(parts[0]):
        items = [getattr(p, f.name) for p in parts]
        if all(x is None for x in items):
            values[f.name] = None
            continue
        if any(x is None for x in items):
            raise ValueError(f"cannot concatenate rollouts: field {f.name!r} is None in some tries only")
        joined = [x for item in items for x in item]
        if len(joined) not in (0, n):
            raise ValueError(f"cannot concatenate rollouts: field {f.name!r} has {len(joined)} rows, expected {n}")
        values[f.name] = joined
    return type(parts[0])(**values)
