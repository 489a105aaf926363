"""`rlvid train` with `trainer.algorithm: mdpo`: (SFT warm start) -> [build pairs -> M-DPO] x rounds;
and `rlvid mdpo-pairs RECIPE [overrides] --n N --out DIR [--model PATH]`, the pair building alone.

With `mdpo.rounds: 1` the run folder holds pairs/ and the trainer's files (metrics.jsonl,
checkpoints/, final/); with R > 1 each round k has its own round_k/ holding the same, and round k
samples its pairs with round k-1's final model, which is also that round's starting policy and
reference (iterative DPO). `mdpo.pairs` names a ready pair folder for the first round instead.
`sft.steps > 0` runs the SFT warm start first (output_dir/sft/, as for GRPO).

Every stage is resumable: a complete pair folder or a round whose final/ is complete is not
redone, an unfinished pair folder continues with its unfinished prompts, and `trainer.resume:
auto` continues an interrupted round from its latest checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rlvid.app.compose import mdpo_trainer, sft_warm_start
from rlvid.redact import install_log_filter
from rlvid.trainers import console
from rlvid.trainers.checkpoint import COMPLETE
from rlvid.trainers.loop import make_accelerator
from rlvid.trainers.mdpo.build import build_pairs, release_memory
from rlvid.trainers.mdpo.pairs import is_complete, read_pairs
from rlvid.trainers.summary import format_summary

logger = logging.getLogger("rlvid.mdpo")


def round_dir(recipe, k: int) -> Path:
    out = Path(recipe.trainer.output_dir)
    return out if recipe.mdpo.rounds == 1 else out / f"round_{k}"


def run_mdpo(recipe, recipe_dir: str | Path | None = None, model_path: str | None = None) -> Path:
    """Run every round (each ends with its summary); returns the final model folder of the last one.

    `model_path`: the starting model when the caller already ran the SFT warm start; otherwise the recipe's model,
    after its warm start when `sft.steps > 0`."""
    if model_path is None:
        model_path = recipe.model.path
        if recipe.sft.steps > 0:
            model_path = str(sft_warm_start(recipe, Path(recipe_dir or ".")))
    accelerator = make_accelerator(recipe)  # for pair building only (it prepares nothing); each trainer has its own
    for k in range(recipe.mdpo.rounds):
        folder = round_dir(recipe, k)
        final = folder / "final"
        if (final / COMPLETE).is_file():
            logger.info("round %d is finished (%s)", k, final)
            model_path = str(final)
            continue
        if k == 0 and recipe.mdpo.pairs:  # a ready pair folder, used as it is
            pairs_dir = Path(recipe.mdpo.pairs)
            if not is_complete(pairs_dir):
                raise FileNotFoundError(f"mdpo.pairs={pairs_dir} is not a complete pair folder (no 'complete' "
                                        "marker); finish it with `rlvid mdpo-pairs RECIPE --out DIR`")
        else:
            pairs_dir = build_pairs(recipe, model_path, folder / "pairs", accelerator, recipe_dir)
        trainer = mdpo_trainer(recipe, read_pairs(pairs_dir), recipe_dir, model_path=model_path, output_dir=folder)
        model_path = str(trainer.fit())
        if trainer.accelerator.is_main_process:
            console.write(format_summary(folder, trainer.stage, trainer.step, trainer.run_seconds, model_path))
        trainer.accelerator.free_memory()  # the next round's sampler and trainer load fresh copies
        del trainer
        release_memory()
    return Path(model_path)


def run_mdpo_pairs(recipe_path: str, overrides: list[str] | None = None, n: int | None = None,
                   out: str | None = None, model: str | None = None) -> Path:
    """`rlvid mdpo-pairs`: build the pair folder `out` (default: output_dir/pairs) with `model` (or model.path)."""
    from rlvid.config import load_recipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_log_filter()  # secret values never reach a log line
    recipe = load_recipe(recipe_path, overrides or [])
    if recipe.streaming.enabled:
        from rlvid.config import RecipeError

        raise RecipeError(f"{recipe_path}: streaming.enabled: a streaming recipe builds its M-DPO pairs inside "
                          "`rlvid train` (trainer.algorithm: mdpo; docs/streaming.md)")
    recipe_dir = Path(recipe_path).resolve().parent
    out_dir = Path(out) if out else Path(recipe.trainer.output_dir) / "pairs"
    return build_pairs(recipe, model or recipe.model.path, out_dir, make_accelerator(recipe), recipe_dir, n)
