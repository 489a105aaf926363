"""Run a recipe's rewards on a batch and combine them into one score per completion.

Each reward is called once per batch with the completions and every column (keyword
arguments, as TRL does). Its output is checked (a list of float|None as long as the batch, or a
dict of such lists: sub-scores), and the weighted total is

    total[i] = sum over rewards r with a score for sample i of  weight_r * score_r[i]

where a dict reward's score is the sum of its sub-scores. None means "not applicable": it adds
nothing (the same as TRL's nansum), it is not a zero. Applicability depends on the sample's task,
which a GRPO group shares, so group-normalised advantages are unaffected by this choice. A sample
that no reward applies to gets 0 and is counted in `unscored`.

Errors: a wrong return type or length is a bug in the reward and always raises. An exception
inside a reward, or a NaN/inf score, raises with on_error="raise" (default); with on_error="zero"
the batch is retried one sample at a time, the failing samples score 0, and each failure is
counted and logged with the reward's label and the start of the completion.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewards.errors import NonFiniteRewardError, RewardError
from rewards.registry import BoundReward, RewardSpec, build_reward, parse_reward_spec
from rewards.timeout import RewardTimeout, call_with_timeout

logger = logging.getLogger("rlvid.rewards")
ON_ERROR = ("raise", "zero")
_SHOWN_CHARS = 200


class _ScoreFailure(Exception):
    """A non-finite score, which on_error="zero" may absorb; `detail` says which."""

    def __init__(self, label: str, detail: str):
        super().__init__(f"reward {label!r}: {detail}")
        self.detail = detail


@dataclass
class RewardOutput:
    """Scores of one batch.

    total: the weighted sum per completion (what advantages are computed from).
    scores: unweighted per-completion scores by label; a dict reward adds `label/sub` columns and
        `label` (the sum of its sub-scores). None where the reward does not apply.
    errors: failures absorbed per label (on_error="zero").
    unscored: completions no reward applied to (their total is 0).
    """

    total: list[float]
    scores: dict[str, list[float | None]]
    errors: dict[str, int] = field(default_factory=dict)
    unscored: int = 0

    def metrics(self, prefix: str = "rewards") -> dict[str, float]:
        """Means for logging: `{prefix}/{key}` over the completions the key applies to,
        `{prefix}/total`, and `{prefix}_errors/{label}` counts."""
        out: dict[str, float] = {}
        for key, values in self.scores.items():
            live = [v for v in values if v is not None]
            if live:
                out[f"{prefix}/{key}"] = sum(live) / len(live)
        if self.total:
            out[f"{prefix}/total"] = sum(self.total) / len(self.total)
        for label, count in self.errors.items():
            out[f"{prefix}_errors/{label}"] = float(count)
        return out


def _check_values(label: str, values: Any, n: int) -> list[float | None]:
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise RewardError(label, f"returned {type(values).__name__}; expected a list of float|None or a dict of them")
    if len(values) != n:
        raise RewardError(label, f"returned {len(values)} scores for {n} completions")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if type(v) is float:
            pass
        elif v is None:
            out.append(None)
            continue
        elif isinstance(v, numbers.Real):
            v = float(v)
        else:
            raise RewardError(label, f"returned a {type(v).__name__} at index {i}; expected float or None")
        if v - v != 0.0:
            raise _ScoreFailure(label, f"score {v} at index {i} is not finite")
        out.append(v)
    return out


def _check_output(label: str, raw: Any, n: int) -> dict[str, list[float | None]]:
    """Validated sub-scores; key "" for a plain (non-dict) reward."""
    if isinstance(raw, Mapping):
        if not raw:
            raise RewardError(label, "returned an empty dict")
        out = {}
        for sub, values in raw.items():
            if not isinstance(sub, str) or not sub or "/" in sub:
                raise RewardError(label, f"sub-score names must be non-empty strings without '/', got {sub!r}")
            out[sub] = _check_values(f"{label}/{sub}", values, n)
        return out
    return {"": _check_values(label, raw, n)}


def _one(columns: Mapping[str, Any], i: int, n: int) -> dict[str, Any]:
    """Sample i of every column aligned with the batch; other arguments are passed unchanged."""
    return {
        k: (v[i : i + 1] if hasattr(v, "__len__") and not isinstance(v, (str, bytes, Mapping)) and len(v) == n else v)
        for k, v in columns.items()
    }


class RewardSet:
    """The rewards of a recipe, ready to score batches: `RewardSet(...)(completions, **columns)`."""

    def __init__(self, rewards: Sequence[BoundReward], on_error: str = "raise", max_logged: int = 3,
                 timeout_s: float = 0.0):
        """`timeout_s` > 0 interrupts a reward call that runs longer (`rewards.timeout`); it then follows
        `on_error` (with "zero" the whole batch of that reward scores 0, without a per-sample retry)."""
        if on_error not in ON_ERROR:
            raise ValueError(f"rewards.on_error is {on_error!r}; allowed: {list(ON_ERROR)}")
        labels = [r.label for r in rewards]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"several rewards are labelled {dup}; give them distinct 'label's")
        if not rewards:
            raise ValueError("a reward set needs at least one reward")
        self.rewards = list(rewards)
        self.on_error = on_error
        self.max_logged = max_logged
        self.timeout_s = timeout_s

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rewards]

    def _run(self, reward: BoundReward, completions: list[str], columns: Mapping[str, Any]) -> tuple[dict, int]:
        n = len(completions)
        what = f"reward {reward.label!r}"
        try:
            return _check_output(reward.label, call_with_timeout(reward, self.timeout_s, what, completions,
                                                                 **columns), n), 0
        except RewardError:
            raise
        except Exception as e:
            if isinstance(e, RewardTimeout) and self.on_error == "zero":
                logger.warning("%s (scored 0 for the batch of %d)", e, n)
                return {"": [0.0] * n}, n
            if self.on_error == "raise":
                if isinstance(e, _ScoreFailure):
                    raise NonFiniteRewardError(reward.label, e.detail) from None
                raise RewardError(reward.label, f"raised {type(e).__name__}: {e}") from e
        # on_error == "zero": find the failing samples one by one.
        per_sample: list[dict[str, list[float | None]] | None] = []
        failures = 0
        for i, c in enumerate(completions):
            try:
                per_sample.append(_check_output(
                    reward.label, call_with_timeout(reward, self.timeout_s, what, [c], **_one(columns, i, n)), 1))
            except RewardError:
                raise
            except Exception as e:
                failures += 1
                per_sample.append(None)
                if failures <= self.max_logged:
                    logger.warning(
                        "reward %r failed (scored 0): %s: %s; completion: %r",
                        reward.label, type(e).__name__, e, c[:_SHOWN_CHARS],
                    )
        if failures > self.max_logged:
            logger.warning("reward %r failed on %d of %d completions (scored 0)", reward.label, failures, n)
        subs = list(dict.fromkeys(k for s in per_sample if s is not None for k in s)) or [""]
        merged: dict[str, list[float | None]] = {
            k: [(0.0 if s is None else s.get(k, [None])[0]) for s in per_sample] for k in subs
        }
        return merged, failures

    def __call__(self, completions: list[str], **columns: Any) -> RewardOutput:
        """Score a batch; columns are lists aligned with `completions`."""
        if not isinstance(completions, list):
            completions = list(completions)
        n = len(completions)
        total = [0.0] * n
        scored = [False] * n
        scores: dict[str, list[float | None]] = {}
        errors: dict[str, int] = {}
        for reward in self.rewards:
            parts, failures = self._run(reward, completions, columns)
            if self.on_error == "zero":
                errors[reward.label] = failures
            if "" in parts:
                values = parts[""]
            else:
                for sub, vals in parts.items():
                    scores[f"{reward.label}/{sub}"] = vals
                values = [_sum_present(col) for col in zip(*parts.values(), strict=True)]
            scores[reward.label] = values
            w = reward.weight
            for i, v in enumerate(values):
                if v is not None:
                    total[i] += w * v
                    scored[i] = True
        return RewardOutput(total, scores, errors, scored.count(False))


def _sum_present(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def compose_rewards(
    specs: Iterable[RewardSpec | Mapping[str, Any] | str | Callable[..., Any]],
    on_error: str = "raise",
    base_dir: str | Path | None = None,
    timeout_s: float = 0.0,
) -> RewardSet:
    """Build a `RewardSet` from recipe entries `{name, weight, kwargs[, label]}` (or plain reward callables).

    `base_dir` is where relative `./file.py:function` paths are looked up first (the recipe's
    folder). Labels default to the reward's name; a repeated name gets `_2`, `_3`, ... appended.
    """
    built: list[BoundReward] = []
    seen: dict[str, int] = {}
    for raw in specs:
        reward = build_reward(raw, base_dir)
        labelled = not callable(raw) and parse_reward_spec(raw).label is not None
        if not labelled and reward.label in seen:
            seen[reward.label] += 1
            reward.label = f"{reward.label}_{seen[reward.label]}"
        seen.setdefault(reward.label, 1)
        built.append(reward)
    return RewardSet(built, on_error=on_error, timeout_s=timeout_s)
