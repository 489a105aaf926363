"""Evaluation of a streaming policy through the shared path: greedy transcripts -> `evaluate_completions`.

The transcripts of the held-out streams (`StreamPolicy.transcripts`) are scored like any
completions: `rlvid.eval.metrics.evaluate_completions` reports `stream/<metric>` (timing
precision / recall / F1, mean delay, MAGQA-style content; rlvid/eval/streaming_metrics.py), and
the run's rewards are averaged under `rewards/`. The `eval_streaming` hook (trainers/hooks.py)
and `rlvid eval` on a streaming recipe (app/streaming.py) both call it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards import RewardSet, reward_state, score
from rlvid.eval.metrics import evaluate_completions


def streaming_eval(policy, clips: Sequence, recipe, reward_set: RewardSet | None = None, step: int = 0
                   ) -> tuple[dict[str, float], list[str]]:
    """(metrics, transcripts) of greedy streaming rollouts of `policy` on `clips` (`StreamClip`s)."""
    transcripts = policy.transcripts(clips)
    samples = [c.sample for c in clips]
    metrics = evaluate_completions(transcripts, samples, stream_tolerance=recipe.streaming.tolerance)
    if reward_set is not None:
        out = score(reward_set, samples, transcripts, trainer_state=reward_state(step, recipe.trainer.max_steps))
        metrics.update(out.metrics("rewards"))
    return metrics, transcripts
