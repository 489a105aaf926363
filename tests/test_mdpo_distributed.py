"""`rlvid train recipes/mdpo_quick.yaml` on two CPU processes (torchrun, gloo), two rounds: prompts are sharded
for pair building, both ranks train on the same pairs, and both end with identical parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from tiny_setup import REPO_RECIPES, make_tiny_setup

from rlvid.trainers.mdpo.pairs import read_pairs

# `rlvid train` as the CLI runs it, with MDPOTrainer.fit wrapped to save each rank's parameters per round
SCRIPT = textwrap.dedent('''
    import json, sys, torch
    from rlvid.trainers.mdpo import trainer as mdpo

    fit = mdpo.MDPOTrainer.fit

    def recording_fit(self):
        out = fit(self)
        rank = self.accelerator.process_index
        flat = torch.cat([p.detach().flatten() for p in self.accelerator.unwrap_model(self.model).parameters()])
        torch.save(flat, self.output_dir / f"params-rank{rank}.pt")
        (self.output_dir / f"world-rank{rank}.json").write_text(json.dumps(
            {"world": self.accelerator.num_processes, "local": [p.id for p in self.local_batch(0)]}))
        return out

    mdpo.MDPOTrainer.fit = recording_fit
    from rlvid.cli import main
    sys.exit(main(["train", *sys.argv[1:]]))
''')

LENGTH = "def length(completions, **kw):\n    return [min(len(c), 30) / 30 for c in completions]\n"


@pytest.mark.slow
def test_two_processes_two_rounds_end_with_identical_parameters(tmp_path):
    setup = make_tiny_setup(tmp_path)
    (tmp_path / "run.py").write_text(SCRIPT)
    (tmp_path / "length.py").write_text(LENGTH)
    out = tmp_path / "out"
    data = setup["data"]
    overrides = [f"model.path={setup['model']}", f"data.train={data / 'train.jsonl'}",
                 f"data.val={data / 'val.jsonl'}", f"data.test={data / 'test.jsonl'}", "data.max_samples=8",
                 f"trainer.output_dir={out}", "trainer.max_steps=2", "trainer.micro_batch_size_per_device=2",
                 "trainer.lr=0.01", "trainer.max_eval_samples=2", "trainer.progress_bar=false", "sft.steps=0",
                 "rollout.max_new_tokens=6", "rollout.temperature=1.0", "mdpo.num_samples=3", "mdpo.min_gap=0.01",
                 "mdpo.pairs_per_step=4", "mdpo.generation_batch_size=2", "mdpo.rounds=2",
                 "mdpo.metric=[{name: ./length.py:length}]", "logging.wandb=disabled"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           str(tmp_path / "run.py"), str(REPO_RECIPES / "mdpo_quick.yaml"), *overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    for k in (0, 1):
        folder = out / f"round_{k}"
        worlds = [json.loads((folder / f"world-rank{r}.json").read_text()) for r in (0, 1)]
        assert [w["world"] for w in worlds] == [2, 2]  # two ranks really ran
        assert not set(worlds[0]["local"]) & set(worlds[1]["local"])  # each rank trains on its share of a step
        p0, p1 = torch.load(folder / "params-rank0.pt"), torch.load(folder / "params-rank1.pt")
        assert torch.equal(p0, p1)
        sampled = [[json.loads(line)["id"] for line in open(folder / "pairs" / f"done-rank{r}.jsonl")]
                   for r in (0, 1)]
        assert sorted(sampled[0] + sampled[1]) == sorted(set(sampled[0] + sampled[1]))  # sharded, none twice
        assert len(sampled[0]) == len(sampled[1]) == 4
        pairs = read_pairs(folder / "pairs")
        assert len(pairs) >= 4 and all(p.ref_chosen_logp is not None for p in pairs)
        assert (folder / "final" / "complete").is_file()
    # round 1 sampled with round 0's final model, which is also its starting point
    summary = json.loads((out / "round_1" / "pairs" / "summary.json").read_text())
    assert summary["model"] == str(out / "round_0" / "final")
    assert not torch.equal(torch.load(out / "round_0" / "params-rank0.pt"),
                           torch.load(out / "round_1" / "params-rank0.pt"))
