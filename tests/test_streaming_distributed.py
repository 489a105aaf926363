"""Streaming GRPO on two CPU processes (torchrun, gloo): each rank trains on its share of the streams, the
gradients are averaged (`LoopUpdate`), and both ranks end with identical parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"

# `rlvid train` as the CLI runs it, with the streaming trainers' fit wrapped to save each rank's parameters
SCRIPT = textwrap.dedent('''
    import json, sys, torch
    from rlvid.trainers import streaming_loop

    fit = streaming_loop.StreamingRun.fit

    def recording_fit(self):
        out = fit(self)
        rank = self.accelerator.process_index
        flat = torch.cat([p.detach().flatten() for p in self.accelerator.unwrap_model(self.model).parameters()])
        torch.save(flat, self.output_dir / f"params-rank{rank}.pt")
        (self.output_dir / f"world-rank{rank}.json").write_text(json.dumps(
            {"world": self.accelerator.num_processes, "local": [c.sample.id for c in self.local_batch(0)]}))
        return out

    streaming_loop.StreamingRun.fit = recording_fit
    from rlvid.cli import main
    sys.exit(main(["train", *sys.argv[1:]]))
''')


@pytest.mark.slow
def test_two_processes_end_with_identical_parameters(tmp_path):
    (tmp_path / "run.py").write_text(SCRIPT)
    out = tmp_path / "out"
    overrides = [f"trainer.output_dir={out}", "trainer.max_steps=2", "trainer.global_prompts_per_step=2",
                 "trainer.progress_bar=false", "sft.steps=2", "sft.global_samples_per_step=2",
                 "rollout.num_generations=2", "streaming.synthetic.chunks=4", "streaming.synthetic.train=4",
                 "streaming.synthetic.val=2", "trainer.eval_steps=2", "logging.wandb=disabled"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29537",
           str(tmp_path / "run.py"), str(RECIPE), *overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    for folder in (out / "sft", out):  # the warm start, then GRPO
        worlds = [json.loads((folder / f"world-rank{r}.json").read_text()) for r in (0, 1)]
        assert [w["world"] for w in worlds] == [2, 2]  # two ranks really ran
        assert not set(worlds[0]["local"]) & set(worlds[1]["local"])  # each rank trains on its share of a step
        p0, p1 = torch.load(folder / "params-rank0.pt"), torch.load(folder / "params-rank1.pt")
        assert torch.equal(p0, p1)
        assert (folder / "final" / "complete").is_file()
    assert not torch.equal(torch.load(out / "sft" / "params-rank0.pt"), torch.load(out / "params-rank0.pt"))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/stream/timing_f1" in r] == [2]  # the hook ran once, on rank 0
