"""Two CPU processes (torchrun, gloo): same parameters on both ranks; advantages as one process computes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.algos import compute_advantages

SCRIPT = textwrap.dedent('''
    import json, sys, torch
    from rlvid.config import load_recipe
    from rlvid.app.compose import grpo_trainer

    trainer = grpo_trainer(load_recipe(sys.argv[1]), sys.argv[2])
    records = []
    compute_advantages = trainer.compute_advantages

    def recording(rollouts, rewards):
        adv = compute_advantages(rollouts, rewards)
        records.append({"step": trainer.step, "ids": [trainer.local_batch(trainer.step)[i].id
                                                     for i in rollouts.prompt_index],
                        "rewards": rewards.tolist(), "adv": adv.tolist()})
        return adv

    trainer.compute_advantages = recording
    trainer.fit()
    rank = trainer.accelerator.process_index
    flat = torch.cat([p.detach().flatten() for p in trainer.accelerator.unwrap_model(trainer.model).parameters()])
    torch.save(flat, f"{sys.argv[2]}/params-rank{rank}.pt")
    with open(f"{sys.argv[2]}/records-rank{rank}.json", "w") as f:
        json.dump({"world": trainer.accelerator.num_processes, "records": records}, f)
''')

LENGTH_REWARD = "def length(completions, **kw):\n    return [len(c) / 10 for c in completions]\n"


@pytest.mark.slow
def test_two_processes_keep_parameters_equal_and_groups_whole(tmp_path):
    setup = make_tiny_setup(tmp_path)
    (tmp_path / "run.py").write_text(SCRIPT)
    (tmp_path / "length.py").write_text(LENGTH_REWARD)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "out", {
        "trainer": {"max_steps": 3, "global_prompts_per_step": 4, "micro_batch_size_per_device": 3,
                    "scale_rewards": "batch", "lr": 0.01},
        "rewards": {"functions": [{"name": "./length.py:length"}, {"name": "format", "weight": 0.5,
                                                                            "kwargs": {"think": "forbidden"}}]},
    })
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(tmp_path / "run.py"), str(recipe), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]

    recs = [json.loads((tmp_path / f"records-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in recs] == [2, 2]  # two ranks really ran
    p0, p1 = torch.load(tmp_path / "params-rank0.pt"), torch.load(tmp_path / "params-rank1.pt")
    assert torch.equal(p0, p1)
    for step in range(3):
        a, b = recs[0]["records"][step], recs[1]["records"][step]
        assert not set(a["ids"]) & set(b["ids"])  # each prompt's group lives on one rank
        assert len(a["ids"]) == len(b["ids"]) == 8  # 2 prompts x G=4 per rank
        rewards = torch.tensor(a["rewards"] + b["rewards"])
        groups = [f"0-{i}" for i in a["ids"]] + [f"1-{i}" for i in b["ids"]]
        gid = torch.tensor([sorted(set(groups)).index(g) for g in groups])
        expected = compute_advantages(rewards, group_ids=gid, scale="batch")
        torch.testing.assert_close(torch.tensor(a["adv"] + b["adv"]), expected, rtol=1e-5, atol=1e-6)
        assert expected.abs().sum() > 0
