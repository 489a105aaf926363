"""The `eval_dense_caption_cotasks` hook: dense captioning evaluated as the CoTasks chain the model trained on.

Each val dense_caption sample is answered turn by turn, greedily, every turn seeing the model's own
earlier answers (not the ground truth); the segments and captions answers are then assembled into one
event list and scored with the usual dense-captioning metrics (SODA_c, METEOR, CIDEr, localisation
precision/recall/F1), next to each sub-task's own score (count accuracy, segment F1). Use it with
`mdpo.cotasks: true` instead of `eval_dense_caption`, which asks for the event list in one turn.
Options (hook kwargs): `order` (default: the recipe's `mdpo.cotasks_order`), `caption_scorers`
(default ["meteor", "cider"]; METEOR needs java), `soda_scorer` (default "meteor").
"""

from __future__ import annotations

from rlvid.eval.metrics import dense_caption_metrics
from rlvid.eval.predict import predict
from rlvid.policy import Policy
from rlvid.trainers.hooks import HOOKS
from rlvid.trainers.mdpo.cotasks import (
    ChainInputBuilder,
    ChainPrompt,
    assemble_events,
    events_answer,
    score_turns,
    turn_names,
)


def predict_chain(policy: Policy, samples: list, order: str, batch_size: int = 8, max_new_tokens: int = 128
                  ) -> list[list[str]]:
    """Each sample's greedy answers to every turn of the chain, later turns conditioned on the earlier answers."""
    chain = policy.with_builder(ChainInputBuilder.like(policy.builder))
    answers: list[list[str]] = [[] for _ in samples]
    for turn in range(len(turn_names(order))):
        prompts = [ChainPrompt(s, order, turn, tuple(a)) for s, a in zip(samples, answers, strict=True)]
        for a, text in zip(answers, predict(chain, prompts, batch_size, max_new_tokens), strict=True):
            a.append(text)
    return answers


@HOOKS.register("eval_dense_caption_cotasks")
def eval_dense_caption_cotasks(policy, step, epoch, recipe, samples, order: str | None = None,
                               caption_scorers=("meteor", "cider"), soda_scorer="meteor", **_) -> dict[str, float]:
    order = order or recipe.mdpo.cotasks_order
    dense = [s for s in samples if s.task == "dense_caption" and s.events]
    if not dense:
        return {}
    names = turn_names(order)
    answers = predict_chain(policy, dense, order, recipe.trainer.eval_batch_size, recipe.rollout.max_new_tokens)
    events = [assemble_events(a[names.index("segments")], a[names.index("captions")], s.duration)
              for s, a in zip(dense, answers, strict=True)]
    metrics = dense_caption_metrics([events_answer(e) for e in events], [s.events for s in dense],
                                    [s.duration for s in dense], caption_scorers=tuple(caption_scorers),
                                    soda_scorer=soda_scorer, dense=recipe.trainer.eval_dense,
                                    references=[s.reference_events for s in dense])
    out = {f"dense_caption_cotasks/{k}": v for k, v in metrics.items()}
    for k, name in enumerate(names):
        scores = score_turns([ChainPrompt(s, order, k) for s in dense], [a[k] for a in answers], soda_scorer)
        out[f"dense_caption_cotasks/turn_{name}"] = sum(scores) / len(scores)
    out["dense_caption_cotasks/count"] = float(len(dense))
    return out
