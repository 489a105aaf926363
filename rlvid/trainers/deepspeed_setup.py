"""DeepSpeed's batch settings from the recipe, so `rlvid train` starts under recipes/accelerate/zero*.yaml.

accelerate fills DeepSpeed's "auto" batch keys only from a prepared DataLoader; rlvid prepares none
(a step's rows come from rollouts), so `Accelerator.prepare` would refuse "auto". The recipe is the
one source of batch sizes: DeepSpeed's micro-batch is `trainer.micro_batch_size_per_device`, its
gradient accumulation is the micro-batches one process runs per optimizer update, its clipping is
the recipe's `max_grad_norm`. An explicit, different value in the DeepSpeed config is replaced, with
a warning naming both. Accumulation boundaries are still set by `Trainer.accumulate_and_step` on
every backward, so the count here never decides when DeepSpeed steps; it keeps DeepSpeed's
`train_batch_size` (micro x accumulation x processes) true.
"""

from __future__ import annotations

import logging
import os

from accelerate import Accelerator
from accelerate.utils import DistributedType

logger = logging.getLogger("rlvid.trainers")


def launched_with_deepspeed() -> bool:
    """`accelerate launch` with a DeepSpeed config (or --use_deepspeed) set this for every process."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def check_cpu_deepspeed_launch(has_cuda: bool) -> None:
    """Refuse DeepSpeed over several processes without CUDA: accelerate then counts 1 process while DeepSpeed
    joins all of them, so each process would train the whole batch and DeepSpeed's batch check fails."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if launched_with_deepspeed() and not has_cuda and world > 1:
        raise RuntimeError(f"DeepSpeed on {world} CPU processes is not supported (accelerate sees one process "
                           "without CUDA); on CPU use --num_processes 1 with the zero configs, or "
                           "recipes/accelerate/ddp.yaml / torchrun for several processes")


def uses_deepspeed(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.DEEPSPEED


def fill_deepspeed_batch_config(accelerator: Accelerator, micro_batch_size: int, accumulation_steps: int,
                                max_grad_norm: float) -> dict | None:
    """Write the recipe's batch sizes into the DeepSpeed config before `prepare`; returns what was set (None
    without DeepSpeed)."""
    if not uses_deepspeed(accelerator):
        return None
    plugin = accelerator.state.deepspeed_plugin
    config = plugin.deepspeed_config
    wanted = {"train_micro_batch_size_per_gpu": micro_batch_size,
              "gradient_accumulation_steps": accumulation_steps,
              "train_batch_size": micro_batch_size * accumulation_steps * accelerator.num_processes,
              "gradient_clipping": float(max(max_grad_norm, 0.0))}
    for key, value in wanted.items():
        have = config.get(key, "auto")
        if have not in ("auto", None) and float(have) != float(value):
            logger.warning("DeepSpeed config %s=%s replaced by %s from the recipe (rlvid's batch sizes and clipping "
                           "come from the recipe: trainer.micro_batch_size_per_device, the step's batch, "
                           "max_grad_norm)", key, have, value)
        config[key] = value
    plugin.gradient_accumulation_steps = accumulation_steps
    plugin.gradient_clipping = wanted["gradient_clipping"]
    accelerator.gradient_accumulation_steps = accumulation_steps  # accelerate's own copy; else it warns at prepare
    return wanted
