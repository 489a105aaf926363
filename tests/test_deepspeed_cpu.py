"""GRPO, SFT and M-DPO steps under `accelerate launch` with recipes/accelerate/zero2.yaml and zero3.yaml, on CPU;
the DeepSpeed side of `Trainer.accumulate_and_step` and the batch keys with stand-ins (these run without deepspeed).

DeepSpeed runs on its CPU accelerator here (one process, gloo). Each step has several micro-batches; the
test checks what the CPU rehearsal of the GPU check (docs/gpu.md) found broken: the trainer starts (DeepSpeed's
"auto" micro-batch is filled from the recipe), each optimizer update is ONE engine step (GRPO with
num_iterations 2: two per step), and the gradient equals the one of a plain single-process run of the same
recipe (the same loss scaling as DDP: DeepSpeed must not divide by its accumulation count again).

scripts/setup.sh does not install deepspeed (it is the optional extra `rlvid[deepspeed]`): the two launch tests
skip where it is not importable. To run them, install the extra, or put deepspeed on PYTHONPATH, e.g. `pip install
--no-deps --target DIR deepspeed==0.19.8 hjson msgpack` (docs/gpu.md); the first run JIT-builds DeepSpeed's small
shared-memory op (~3 min on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="deepspeed is not importable (the project does not install it)")

SCRIPT = textwrap.dedent('''
    import json, sys, torch
    from pathlib import Path
    from rlvid.config import load_recipe
    from tiny_setup import make_tiny_setup, write_recipe
    from rlvid.app.compose import grpo_trainer, mdpo_trainer, sft_trainer
    from rlvid.trainers.mdpo.pairs import Pair
    from rlvid.data.loaders import load_samples

    root, mode, algos = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
    torch.set_num_threads(1)
    setup = make_tiny_setup(root / "setup", n=20)
    (root / "varied.py").write_text("def varied(completions, completion_ids, **kw):\\n"
                                    "    return [(sum(i) % 7) / 6.0 for i in completion_ids]\\n")
    # micro-batch 2: GRPO 2 prompts x G 4 = 8 rows -> 4 micro-batches, 2 updates (num_iterations 2);
    # SFT 4 samples -> 2 micro-batches; M-DPO 4 pairs of 2 rows -> 4 micro-batches
    common = {"rollout": {"num_generations": 4, "max_new_tokens": 4},
              "trainer": {"global_prompts_per_step": 2, "micro_batch_size_per_device": 2, "num_iterations": 2,
                          "beta": 0.0, "lr": 1e-3, "max_grad_norm": 1.0},
              "sft": {"global_samples_per_step": 4, "lr": 1e-3},
              "mdpo": {"pairs_per_step": 4, "reference": "precomputed"},
              "rewards": {"functions": [{"name": "./varied.py:varied"}]}}

    def recipe(name, trainer=None):
        over = dict(common, trainer=dict(common["trainer"], **(trainer or {})))
        return load_recipe(write_recipe(root / f"{mode}-{name}.yaml", setup, root / f"{mode}-{name}", over))

    def pairs():
        samples = load_samples(str(setup["data"] / "train.jsonl")).samples
        texts = [("<answer>1.0 to 3.0</answer>", "<answer>5.0 to 6.0</answer>"),
                 ("<answer>2.5 to 4.0</answer>", "<answer>0.5 to 9.0</answer>"),
                 ("<answer>0.0 to 1.0</answer>", "no answer"),
                 ("<answer>3.0 to 4.5</answer>", "<answer>3.0 to 4.0</answer>")]
        return [Pair(s.id, s, c, r, 0.9, 0.1, batch=f"b{i}") for i, (s, (c, r)) in enumerate(zip(samples, texts))]

    builders = {"grpo": lambda: grpo_trainer(recipe("grpo"), root),
                "sft": lambda: sft_trainer(recipe("sft"), root),
                "mdpo": lambda: mdpo_trainer(recipe("mdpo", {"algorithm": "mdpo"}), pairs(), root)}
    out = {}
    for algo in algos:
        trainer = builders[algo]()
        engine = trainer.model
        before = getattr(engine, "global_steps", None)
        metrics = trainer.train_step(trainer.local_batch(0), 0)
        plugin = trainer.accelerator.state.deepspeed_plugin
        out[algo] = {"type": str(trainer.accelerator.distributed_type),
                     "updates": None if before is None else engine.global_steps - before,
                     "expected_updates": trainer.updates_per_step,
                     "micro_batches": trainer.micro_batches_per_update,
                     "grad_norm": metrics["grad_norm"], "loss": metrics["loss"],
                     "ds": None if plugin is None else {k: plugin.deepspeed_config.get(k) for k in (
                         "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size",
                         "gradient_clipping")}}
    (root / f"{mode}.json").write_text(json.dumps(out))
''')


def run(root: Path, mode: str, algos: str) -> dict:
    """`mode` plain: python; zero2 / zero3: accelerate launch with recipes/accelerate/<mode>.yaml, one process."""
    (root / "run.py").write_text(SCRIPT)
    path = os.pathsep.join(p for p in (str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled", PYTHONPATH=path,
               CUDA_VISIBLE_DEVICES="")
    launch = [] if mode == "plain" else [
        "-m", "accelerate.commands.launch", "--config_file", str(REPO / "recipes" / "accelerate" / f"{mode}.yaml"),
        "--num_processes", "1", "--main_process_port", "0"]
    proc = subprocess.run([sys.executable, *launch, str(root / "run.py"), str(root), mode, algos], env=env,
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads((root / f"{mode}.json").read_text())


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return run(tmp_path_factory.mktemp("plain"), "plain", "grpo,sft,mdpo")


def check_like_plain(result: dict, plain: dict, algo: str, micro_batches: int, accumulation: int) -> None:
    r, p = result[algo], plain[algo]
    assert r["type"] == "DistributedType.DEEPSPEED" and p["type"] == "DistributedType.NO", (r, p)
    assert r["micro_batches"] == accumulation  # several micro-batches per update
    assert r["updates"] == r["expected_updates"], r  # one engine step per optimizer update, not per micro-batch
    assert r["ds"] == {"train_micro_batch_size_per_gpu": micro_batches, "gradient_accumulation_steps": accumulation,
                       "train_batch_size": micro_batches * accumulation, "gradient_clipping": 1.0}, r["ds"]
    # same loss scaling as a plain (DDP-contract) run: the same loss and gradient norm, not 1/accumulation of it
    assert r["loss"] == pytest.approx(p["loss"], rel=1e-4, abs=1e-6), (r, p)
    assert r["grad_norm"] == pytest.approx(p["grad_norm"], rel=1e-3), (r, p)
    assert p["grad_norm"] > 0


@pytest.mark.slow
@needs_deepspeed
def test_zero2_grpo_sft_mdpo_take_one_update_per_step_with_ddp_loss_scaling(tmp_path_factory, plain):
    result = run(tmp_path_factory.mktemp("zero2"), "zero2", "grpo,sft,mdpo")
    assert result["grpo"]["expected_updates"] == 2  # num_iterations 2
    check_like_plain(result, plain, "grpo", 2, 4)
    check_like_plain(result, plain, "sft", 2, 2)
    check_like_plain(result, plain, "mdpo", 2, 4)


@pytest.mark.slow
@needs_deepspeed
def test_zero3_grpo_takes_one_update_per_step_with_ddp_loss_scaling(tmp_path_factory, plain):
    result = run(tmp_path_factory.mktemp("zero3"), "zero3", "grpo")
    check_like_plain(result, plain, "grpo", 2, 4)


def fake_deepspeed_accelerator(config: dict, processes: int = 2):
    """Just what `fill_deepspeed_batch_config` reads and writes (runs without deepspeed, as in CI)."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    plugin = SimpleNamespace(deepspeed_config=config, gradient_accumulation_steps=1, gradient_clipping=1.0)
    return SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, num_processes=processes,
                           state=SimpleNamespace(deepspeed_plugin=plugin), gradient_accumulation_steps=1)


def test_deepspeed_batch_keys_come_from_the_recipe(caplog):
    from rlvid.trainers.deepspeed_setup import fill_deepspeed_batch_config

    acc = fake_deepspeed_accelerator({"train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
                                      "gradient_accumulation_steps": "auto", "zero_optimization": {"stage": 2}})
    with caplog.at_level("WARNING", logger="rlvid.trainers"):
        filled = fill_deepspeed_batch_config(acc, micro_batch_size=4, accumulation_steps=3, max_grad_norm=0.5)
    assert filled == {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 3, "train_batch_size": 24,
                      "gradient_clipping": 0.5}
    assert {k: acc.state.deepspeed_plugin.deepspeed_config[k] for k in filled} == filled
    assert acc.gradient_accumulation_steps == 3 and not caplog.records  # "auto" is filled silently

    acc = fake_deepspeed_accelerator({"train_micro_batch_size_per_gpu": 8, "gradient_clipping": 1.0})
    with caplog.at_level("WARNING", logger="rlvid.trainers"):
        fill_deepspeed_batch_config(acc, micro_batch_size=4, accumulation_steps=1, max_grad_norm=0.0)
    config = acc.state.deepspeed_plugin.deepspeed_config
    assert config["train_micro_batch_size_per_gpu"] == 4 and config["gradient_clipping"] == 0.0  # 0: no clipping
    text = caplog.text
    assert "train_micro_batch_size_per_gpu=8 replaced by 4" in text and "gradient_clipping=1.0 replaced by 0.0" in text


def test_without_deepspeed_nothing_is_filled():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from rlvid.trainers.deepspeed_setup import fill_deepspeed_batch_config

    acc = SimpleNamespace(distributed_type=DistributedType.MULTI_GPU)
    assert fill_deepspeed_batch_config(acc, micro_batch_size=4, accumulation_steps=2, max_grad_norm=1.0) is None


class RecordingDeepSpeedAccelerator:
    """What accumulate_and_step uses of a DeepSpeed Accelerator: records each backward's sync state and kwargs."""

    def __init__(self):
        from accelerate.utils import DistributedType

        self.distributed_type = DistributedType.DEEPSPEED
        self.num_processes, self.process_index, self.sync_gradients = 1, 0, True
        self.calls: list[tuple[bool, dict]] = []

    def backward(self, loss, **kwargs):
        self.calls.append((self.sync_gradients, kwargs))
        loss.backward()

    def clip_grad_norm_(self, params, max_norm):
        return 1.0


def bare_trainer(tmp_path, on_nan: str = "raise"):
    from types import SimpleNamespace

    import torch

    from rlvid.trainers.loop import Trainer

    trainer = Trainer.__new__(Trainer)  # only what accumulate_and_step reads
    trainer.accelerator = RecordingDeepSpeedAccelerator()
    trainer.model = torch.nn.Linear(2, 1)
    trainer.optimizer = SimpleNamespace(step=lambda: None, zero_grad=lambda set_to_none=True: None)
    trainer.scheduler = SimpleNamespace(step=lambda: None)
    trainer.output_dir = tmp_path
    trainer.recipe = SimpleNamespace(trainer=SimpleNamespace(on_nan=on_nan, max_grad_norm=1.0, lr=1.0,
                                                             lr_scheduler="constant", warmup_ratio=0.0,
                                                             weight_decay=0.0),
                                     logging=SimpleNamespace(secret_env=[]))
    return trainer


def test_deepspeed_accumulation_ends_on_the_last_micro_batch_only(tmp_path):
    trainer = bare_trainer(tmp_path)
    x = [float(i + 1) for i in range(3)]

    def loss_fn(i):
        loss = trainer.model.weight.sum() * x[i]
        return loss, {"loss": float(loss.detach())}

    metrics = trainer.accumulate_and_step(3, loss_fn, step=0)
    calls = trainer.accelerator.calls
    assert [sync for sync, _ in calls] == [False, False, True]  # DeepSpeed steps its engine on the last only
    assert all(kw == {"scale_wrt_gas": False} for _, kw in calls)  # the loss is not divided by accumulation again
    assert trainer.accelerator.sync_gradients is True and metrics["skipped_nonfinite"] == 0.0


@pytest.mark.parametrize("on_nan", ["raise", "skip"])
def test_deepspeed_nonfinite_loss_stops_before_the_engine_update(tmp_path, on_nan):
    import torch

    from rlvid.trainers.loop import NonFiniteError

    trainer = bare_trainer(tmp_path, on_nan)

    def loss_fn(i):
        loss = trainer.model.weight.sum() * (torch.nan if i == 0 else 1.0)
        return loss, {"loss": float(loss.detach())}

    with pytest.raises(NonFiniteError, match="non-finite loss") as err:
        trainer.accumulate_and_step(2, loss_fn, step=4, samples=["a", "b"])
    assert [sync for sync, _ in trainer.accelerator.calls] == [False]  # the last (stepping) backward never ran
    assert trainer.accelerator.sync_gradients is True
    assert ("cannot drop an update under DeepSpeed" in str(err.value)) == (on_nan == "skip")
    assert (tmp_path / "bad_steps" / "step-000005-rank0.jsonl").is_file()


def test_deepspeed_on_several_cpu_processes_is_refused_with_a_clear_error(monkeypatch):
    from types import SimpleNamespace

    import torch

    from rlvid.trainers.loop import make_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("WORLD_SIZE", "2")
    recipe = SimpleNamespace(trainer=SimpleNamespace(precision="auto", collective_timeout_s=60))
    with pytest.raises(RuntimeError, match="DeepSpeed on 2 CPU processes is not supported"):
        make_accelerator(recipe)
