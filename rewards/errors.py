"""The one exception type of the reward package."""

from __future__ import annotations


class RewardError(ValueError):
    """A reward that cannot be found, built or trusted; the message names the reward."""

    def __init__(self, reward: str, message: str):
        super().__init__(f"reward {reward!r}: {message}")
        self.reward = reward


class NonFiniteRewardError(RewardError):
    """A reward returned NaN or inf (the trainers skip or stop the step on it, `trainer.on_nan`)."""
