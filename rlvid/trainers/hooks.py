"""Evaluation hooks: the recipe's `hooks` list, run after each epoch or every N steps.

A hook is a function `fn(model, step, epoch, recipe, **context) -> dict[str, float] | None`;
context holds `policy` (the trained `rlvid.policy.Policy`: generate / log-probs with the training
settings), `builder` (its VideoInputBuilder), `samples` (the val split, capped by
`trainer.max_eval_samples`), `output_dir`, `reward_set` and `kwargs` from the recipe entry.
A function without `**context` receives only the names it declares. Builtins decode greedily
with the training prompt and video settings (`rlvid.eval.predict`) and report
`rlvid.eval.metrics.evaluate_completions`; user hooks are named `pkg.mod:fn` or `./file.py:fn`.
Their metrics are logged under `eval/` and written to output_dir/eval/step-N.json.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewards import NonFiniteRewardError, reward_state, score
from rlvid.algos import Registry
from rlvid.eval.metrics import evaluate_completions
from rlvid.eval.predict import predict
from rlvid.redact import scrub

logger = logging.getLogger("rlvid.trainers")


class HookError(RuntimeError):
    """An evaluation hook failed with `trainer.on_hook_error: raise`; the message names the hook and step."""


HookFn = Callable[..., dict[str, float] | None]
HOOKS: Registry[HookFn] = Registry("evaluation hook", entry_point_group="rlvid.hooks")


@dataclass
class _Predictions:
    samples: list
    completions: list[str] = field(default_factory=list)


def _greedy(policy, samples, recipe, tasks: tuple[str, ...] | None) -> _Predictions:
    chosen = [s for s in samples if tasks is None or s.task in tasks]
    if not chosen:
        return _Predictions([])
    out = predict(policy, chosen, batch_size=recipe.trainer.eval_batch_size,
                  max_new_tokens=recipe.rollout.max_new_tokens)
    return _Predictions(chosen, out)


def _task_hook(tasks: tuple[str, ...] | None) -> HookFn:
    def hook(policy, step, epoch, recipe, samples, reward_set=None, **_) -> dict[str, float]:
        pred = _greedy(policy, samples, recipe, tasks)
        if not pred.samples:
            return {}
        metrics = evaluate_completions(pred.completions, pred.samples, convention=recipe.trainer.eval_convention,
                                       dense=recipe.trainer.eval_dense)
        if reward_set is not None:
            ids = [policy.tokenizer(c, add_special_tokens=False)["input_ids"] for c in pred.completions]
            state = reward_state(step, recipe.trainer.max_steps)  # as TRL passes its trainer state
            out = score(reward_set, pred.samples, pred.completions, ids, trainer_state=state)
            metrics.update(out.metrics("rewards"))
        return metrics

    return hook


HOOKS.register("eval_grounding")(_task_hook(("temporal_grounding",)))
HOOKS.register("eval_mcq")(_task_hook(("mcq",)))
HOOKS.register("eval_grounded_qa")(_task_hook(("grounded_qa",)))
HOOKS.register("eval_dense_caption")(_task_hook(("dense_caption",)))
HOOKS.register("eval_all")(_task_hook(None))


@HOOKS.register("eval_streaming")
def eval_streaming(policy, step, recipe, samples, reward_set=None, **_) -> dict[str, float]:
    """Streaming runs (`streaming.enabled`): `stream/<metric>` of greedy streaming rollouts on the val streams."""
    from rlvid.trainers.stream_eval import streaming_eval

    if not hasattr(policy, "transcripts"):
        raise ValueError("eval_streaming evaluates streaming runs (streaming.enabled); this run's policy is not one")
    return streaming_eval(policy, samples, recipe, reward_set, step)[0]


@HOOKS.register("save_samples")
def save_samples(policy, step, epoch, recipe, samples, output_dir, num_samples: int = 8, **_) -> dict:
    """Write greedy completions of the first `num_samples` val samples to output_dir/samples/step-N.jsonl."""
    pred = _greedy(policy, samples[:num_samples], recipe, None)
    out = Path(output_dir) / "samples" / f"step-{step:06d}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        for s, c in zip(pred.samples, pred.completions, strict=True):
            f.write(json.dumps(scrub({"id": s.id, "task": s.task, "answer": s.answer, "intervals": s.intervals,
                                      "completion": c}, recipe.logging.secret_env)) + "\n")
    return {}


def resolve_hook(name: str, base_dir: str | Path | None = None) -> HookFn:
    """A builtin/registered hook name, `pkg.mod:fn`, `./file.py:fn` (relative to the recipe's folder), or an
    entry point of group `rlvid.hooks` (`rlvid.plugins`)."""
    return HOOKS.get(name, base_dir)


@dataclass
class BoundHook:
    name: str
    fn: HookFn
    every_n_steps: int
    kwargs: dict[str, Any]

    def __call__(self, **context: Any) -> dict[str, float]:
        context = dict(context, **self.kwargs)
        params = inspect.signature(self.fn).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            context = {k: v for k, v in context.items() if k in params}
        return dict(self.fn(**context) or {})


class HookRunner:
    """Decides when hooks are due and runs them; metrics come back prefixed `eval/`."""

    def __init__(self, specs, recipe, base_dir: str | Path | None = None):
        self.recipe = recipe
        self.hooks = [BoundHook(s.name, resolve_hook(s.name, base_dir), s.every_n_steps, dict(s.kwargs))
                      for s in specs]

    def due(self, step: int, epoch_end: bool, last: bool) -> list[BoundHook]:
        eval_steps = self.recipe.trainer.eval_steps
        out = []
        for hook in self.hooks:
            every = hook.every_n_steps or eval_steps
            if (every and step % every == 0) or (not every and epoch_end) or last:
                out.append(hook)
        return out

    def run(self, hooks: list[BoundHook], output_dir: Path, step: int, **context: Any) -> dict[str, float]:
        """Run `hooks`; a failing one is logged with its name and the step and the others still run
        (`trainer.on_hook_error: warn`), or stops the run (`raise`). A NaN/inf reward inside a hook follows
        `trainer.on_nan` (skip: logged like a failure). Failures are counted as `eval/hook_errors`."""
        metrics: dict[str, float] = {}
        failed = 0
        for hook in hooks:
            try:
                found = hook(step=step, output_dir=output_dir, recipe=self.recipe, **context)
            except Exception as e:
                nan_skip = isinstance(e, NonFiniteRewardError) and self.recipe.trainer.on_nan == "skip"
                if self.recipe.trainer.on_hook_error == "raise" and not nan_skip:
                    raise HookError(f"evaluation hook {hook.name!r} failed at step {step}: "
                                    f"{type(e).__name__}: {e}") from e
                logger.warning("evaluation hook %r failed at step %d (skipped; trainer.on_hook_error=warn): %s: %s",
                               hook.name, step, type(e).__name__, e)
                failed += 1
                continue
            metrics.update({f"eval/{k}": float(v) for k, v in found.items()})
        if failed:
            metrics["eval/hook_errors"] = float(failed)
        if metrics:
            out = Path(output_dir) / "eval" / f"step-{step:06d}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(scrub(metrics, self.recipe.logging.secret_env), indent=2, sort_keys=True) + "\n")
        return metrics
