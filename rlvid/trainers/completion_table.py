"""Sample completions of a GRPO step as table rows (`trainer.log_completions`): what the model wrote and scored.

Rows go to wandb as a table (`completions`, one per logged step) and to output_dir/completions.jsonl, so a
run whose reward stays flat can be read: the prompt, the completion, its reward and advantage. The first
`n` completions of this process's step are kept (whole groups first, in rollout order).
"""

from __future__ import annotations

from typing import Any

COLUMNS = ("step", "sample_id", "task", "question", "completion", "reward", "advantage", "truncated")
MAX_CHARS = 2000  # a completion longer than this is cut in the table


def completion_rows(prompts: list, rollouts, rewards, advantages, n: int) -> list[dict[str, Any]]:
    """Up to `n` rows (no step yet): sample id/task/question, completion text, reward, advantage, truncated."""
    rows = []
    for i in range(min(n, len(rollouts.texts))):
        sample = prompts[rollouts.prompt_index[i]]
        rows.append({
            "sample_id": getattr(sample, "id", str(rollouts.prompt_index[i])),
            "task": getattr(sample, "task", ""),
            "question": getattr(sample, "question", ""),
            "completion": rollouts.texts[i][:MAX_CHARS],
            "reward": float(rewards[i]),
            "advantage": float(advantages[i]),
            "truncated": bool(rollouts.truncated[i]) if i < len(rollouts.truncated) else False,
        })
    return rows
