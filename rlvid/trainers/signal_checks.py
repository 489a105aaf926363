"""Warnings when a run is not learning: fed the step metrics, says what looks wrong and what to try.

A run where every group has the same reward everywhere, or where most completions hit the token
limit, logs `loss=0.000` and looks normal on the progress bar. `SignalMonitor.check(metrics, step)`
returns a short message for each problem it sees (zero reward variance in every group, most
completions truncated, the mean reward constant over a window of steps, KL or clip fraction
exploding). Each kind of warning is rate-limited: the first time, then at most once every
`every` steps, with the count of steps it was seen in since the last message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Check = Callable[[dict[str, float], "SignalMonitor"], str | None]


@dataclass
class Thresholds:
    """When each check fires (defaults: loose enough that a healthy run stays quiet)."""

    zero_variance: float = 0.999  # adv/zero_fraction at or above this: no group had a reward spread
    truncated: float = 0.5  # rollout/truncated_fraction above this: most completions hit max_new_tokens
    constant_window: int = 5  # rewards/total identical over this many consecutive logged steps
    kl: float = 1.0  # kl_mean or approx_kl above this
    clip_fraction: float = 0.3  # clip_fraction above this


def _zero_variance(m: dict[str, float], mon: SignalMonitor) -> str | None:
    v = m.get("adv/zero_fraction")
    if v is None or v < mon.thresholds.zero_variance:
        return None
    return ("every group had zero reward variance (adv/zero_fraction=1.00): no learning signal this step. All G "
            "completions of a prompt scored the same; check the rewards on a few completions, raise "
            "rollout.temperature or rollout.num_generations, or use easier/harder data (rlvid select)")


def _truncated(m: dict[str, float], mon: SignalMonitor) -> str | None:
    v = m.get("rollout/truncated_fraction")
    if v is None or v <= mon.thresholds.truncated:
        return None
    return (f"{v:.0%} of completions were truncated at rollout.max_new_tokens "
            f"(mean length {m.get('rollout/completion_length', float('nan')):.0f} tokens): raise "
            "rollout.max_new_tokens or ask for shorter answers (a truncated answer usually scores 0)")


def _constant_reward(m: dict[str, float], mon: SignalMonitor) -> str | None:
    window = mon.recent_rewards
    if len(window) < mon.thresholds.constant_window or max(window) != min(window):
        return None
    return (f"rewards/total has been exactly {window[-1]:.3f} for the last {len(window)} logged steps: the rewards "
            "do not tell completions apart; check that the reward functions parse what the model writes")


def _kl(m: dict[str, float], mon: SignalMonitor) -> str | None:
    for key in ("kl_mean", "approx_kl"):
        v = m.get(key)
        if v is not None and v > mon.thresholds.kl:
            return (f"{key}={v:.3g} is above {mon.thresholds.kl:g}: the policy is moving far from its reference/old "
                    "policy; lower trainer.lr, raise trainer.beta or lower trainer.num_iterations")
    return None


def _clip(m: dict[str, float], mon: SignalMonitor) -> str | None:
    v = m.get("clip_fraction")
    if v is None or v <= mon.thresholds.clip_fraction:
        return None
    return (f"clip_fraction={v:.2f}: most of the update is clipped; lower trainer.lr or trainer.num_iterations")


CHECKS: dict[str, Check] = {
    "zero_variance": _zero_variance,
    "truncated": _truncated,
    "constant_reward": _constant_reward,
    "kl": _kl,
    "clip": _clip,
}


@dataclass
class SignalMonitor:
    """Runs `CHECKS` on each step's metrics and rate-limits their messages."""

    every: int = 20  # a warning of one kind at most once per this many steps
    thresholds: Thresholds = field(default_factory=Thresholds)
    recent_rewards: deque = field(init=False)
    _last: dict[str, int] = field(default_factory=dict, init=False)
    _seen: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.recent_rewards = deque(maxlen=max(self.thresholds.constant_window, 1))

    def check(self, metrics: dict[str, float], step: int) -> list[str]:
        """Messages for this step (`step` = steps done), already rate-limited; empty when all looks fine."""
        if "rewards/total" in metrics:
            self.recent_rewards.append(float(metrics["rewards/total"]))
        out = []
        for name, check in CHECKS.items():
            message = check(metrics, self)
            if message is None:
                continue
            self._seen[name] = self._seen.get(name, 0) + 1
            last = self._last.get(name)
            if last is not None and step - last < self.every:
                continue
            seen = self._seen.pop(name)
            since = f" (seen in {seen} steps since step {last})" if last is not None and seen > 1 else ""
            out.append(f"step {step}: {message}{since}")
            self._last[name] = step
        return out
