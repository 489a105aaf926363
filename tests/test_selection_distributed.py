"""Two CPU processes (torchrun, gloo): online filtering keeps groups whole and counts them as one process does;
dynamic sampling runs the same number of rounds on both ranks; offline stats are sharded without overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from data_selection.online import zero_variance

G = 4
# 12 groups of G rewards; groups 0, 3, 4, 8, 11 are flat (all equal), the rest vary.
GROUPS = [[0.5] * G, [0, 1, 0, 0], [1, 1, 0.5, 1], [1] * G, [0] * G, [0.2, 0.4, 0.2, 0.2],
          [0, 0, 0, 1], [3, 2, 3, 3], [0.7] * G, [0, 0.1, 0, 0], [1, 0, 1, 0], [2] * G]

LENGTH_REWARD = "def length(completions, **kw):\n    return [len(c) / 10 for c in completions]\n"

SCRIPT = textwrap.dedent('''
    import json, sys
    import torch, torch.distributed as dist
    from data_selection.collect import collect_stats, process_state
    from data_selection.online import fill_informative_groups, zero_variance
    from rewards import compose_rewards
    from rlvid.data.sample import Sample
    from rlvid.rollout import Rollouts, SamplingParams

    state = process_state()
    rank, world = state.process_index, state.num_processes
    out = sys.argv[2]
    groups = json.loads(sys.argv[1])
    G = len(groups[0])

    # Online: each rank holds a contiguous share of whole groups, as the trainer's local_batch gives it.
    per = len(groups) // world
    mine = groups[rank * per:(rank + 1) * per]
    rewards = [r for g in mine for r in g]
    index = [g for g, rs in enumerate(mine) for _ in rs]
    sel = zero_variance(torch.tensor(rewards), index, group_size=G)
    count = torch.tensor([len(sel.groups)])
    dist.all_reduce(count)

    # Dynamic sampling: rank 0 finds its 2 groups in round 1, rank 1 only in round 3.
    def generate(attempt):
        informative = rank == 0 or attempt == 2
        rs = [[0.0, 1.0, 0.0, 0.0] if informative else [1.0] * 4 for _ in range(2)]
        idx = [g for g in range(2) for _ in range(4)]
        texts = [f"r{rank}t{attempt}g{g}" for g in idx]
        return [f"p{rank}-{attempt}-{g}" for g in range(2)], Rollouts(idx, [[1]] * 8, texts), [x for r in rs for x in r]

    def done_everywhere(done):
        flag = torch.tensor([int(done)])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    fill = fill_informative_groups(generate, target_groups=2, max_tries=5, done_everywhere=done_everywhere)

    # Offline: a fake engine (completion lengths drawn from the seeded torch RNG) and a length reward.
    class FakeEngine:
        def generate(self, batch, k, sampling):
            lengths = torch.randint(1, 30, (len(batch) * k,)).tolist()
            idx = [i for i in range(len(batch)) for _ in range(k)]
            return Rollouts(idx, [[7] * n for n in lengths], ["x" * n for n in lengths])

    samples = [Sample(id=f"s{i}", video="v.mp4", duration=1.0, task="open_qa", question="q", answer="a")
               for i in range(10)]
    reward_set = compose_rewards([{"name": "./length.py:length"}], base_dir=out)
    stats = collect_stats(samples, FakeEngine(), reward_set, SamplingParams(), out + "/select", k=4, batch_size=2,
                          seed=0, state=state)

    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"world": world, "kept": [rank * per + g for g in sel.groups], "rows": sel.rows,
                   "index": index, "global_count": int(count.item()), "fill_prompts": fill.prompts,
                   "fill_tries": fill.tries, "fill_spent": fill.rollouts_spent,
                   "fill_index": fill.rollouts.prompt_index, "stats_ids": [s.id for s in stats]}, f)
''')


@pytest.mark.slow
def test_two_processes_filter_whole_groups_and_shard_offline_stats(tmp_path):
    (tmp_path / "run.py").write_text(SCRIPT)
    (tmp_path / "length.py").write_text(LENGTH_REWARD)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           str(tmp_path / "run.py"), json.dumps(GROUPS), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]  # two ranks really ran

    # Online: every kept group is whole on its rank, and the global result is the one-process result.
    for r in ranks:
        kept_local = {g - (6 if r is ranks[1] else 0) for g in r["kept"]}
        assert r["rows"] == [row for row, g in enumerate(r["index"]) if g in kept_local]
        assert len(r["rows"]) == G * len(kept_local)
    flat = [x for g in GROUPS for x in g]
    one_process = zero_variance(flat, [g for g in range(len(GROUPS)) for _ in range(G)]).groups
    assert one_process == [1, 2, 5, 6, 7, 9, 10]
    assert ranks[0]["kept"] + ranks[1]["kept"] == one_process
    assert ranks[0]["global_count"] == ranks[1]["global_count"] == len(one_process)

    # Dynamic sampling: rank 0 was done after one round but generated in lockstep until rank 1 was.
    assert [r["fill_tries"] for r in ranks] == [3, 3]
    assert ranks[0]["fill_prompts"] == ["p0-0-0", "p0-0-1"] and ranks[1]["fill_prompts"] == ["p1-2-0", "p1-2-1"]
    assert [r["fill_spent"] for r in ranks] == [24, 24] and ranks[1]["fill_index"] == [0] * 4 + [1] * 4

    # Offline: rank r generated samples r, r+2, ...; both ranks return every sample's stats in data order.
    ids = [f"s{i}" for i in range(10)]
    assert ranks[0]["stats_ids"] == ranks[1]["stats_ids"] == ids
    for r in (0, 1):
        shard = tmp_path / "select" / "shards" / f"rank{r}.jsonl"
        rows = [json.loads(line) for line in shard.read_text().splitlines()]
        assert [row["id"] for row in rows] == ids[r::2] and all(row["k"] == 4 for row in rows)
