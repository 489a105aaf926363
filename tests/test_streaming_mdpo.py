"""M-DPO from streaming trajectories: pairs ranked by the streaming reward, log-probs over the policy's tokens only."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rewards import compose_rewards, score
from rlvid.app.train import run_train
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import StreamSampling
from rlvid.trainers.mdpo.stream_pairs import build_stream_pairs, sequence_logps

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo_streaming.yaml"
TIMING = [{"name": "stream_timing", "kwargs": {"tolerance": 1.0, "miss_penalty": 0.5}}]


def test_pairs_rank_by_the_streaming_reward_and_score_only_the_policys_tokens():
    clips = make_stream_clips(3, ("alert",), seed=0, num_chunks=5)
    model = TinyStreamLM(StreamVocab(["tell", "me", "when", "the", "red", "circle", "appears"], max_chunks=5))
    reward_set = compose_rewards(TIMING)
    pairs = build_stream_pairs(model, clips, reward_set, num_samples=6, chunk_seconds=1.0,
                               sampling=StreamSampling(1.5, 2), generator=torch.Generator().manual_seed(0))
    assert pairs, "6 samples per stream at temperature 1.5 should differ in reward somewhere"
    for p in pairs:
        assert p.chosen.transcript != p.rejected.transcript and p.gap > 0
        again = score(reward_set, [p.sample, p.sample], [p.chosen.transcript, p.rejected.transcript]).total
        assert again == [p.chosen_score, p.rejected_score]
    # the summed log-prob is exactly the policy's own choices: the sampling log-probs of its decision tokens
    # (frames, time labels, question and the forced <end> carry none)
    trajs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    logps, tokens = sequence_logps(model, trajs)
    sampled = torch.tensor([sum(t.rollout_logp) for t in trajs])
    torch.testing.assert_close(logps, sampled, rtol=1e-4, atol=1e-4)
    assert tokens.tolist() == [float(sum(t.policy_mask)) for t in trajs]
    assert all(sum(t.policy_mask) < len(t.ids) / 2 for t in trajs)  # most positions are the stream's, not choices
    torch.testing.assert_close(torch.tensor([p.ref_chosen for p in pairs]), logps[:len(pairs)])


def test_streaming_mdpo_run_trains_on_synthetic_streams(tmp_path):
    out = tmp_path / "run"
    overrides = ["trainer.algorithm=mdpo", f"trainer.output_dir={out}", "trainer.max_steps=12", "trainer.lr=3e-3",
                 "trainer.eval_steps=6", "sft.steps=3", "sft.global_samples_per_step=4", "mdpo.num_samples=6",
                 "mdpo.pairs_per_prompt=1", "mdpo.pairs_per_step=2", "rollout.temperature=1.5",
                 "streaming.synthetic.chunks=4", "streaming.synthetic.train=6", "streaming.synthetic.val=3",
                 "logging.wandb=disabled"]
    final = run_train(str(RECIPE), overrides)
    assert (final / "stream_lm.pt").is_file() and (out / "sft" / "final" / "complete").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 12 and all(r["stage"] == "mdpo" for r in rows)
    assert abs(losses[0] - 0.6931) < 1e-3  # policy == reference at the first step: -log sigmoid(0)
    epoch = [r["step"] for r in rows if "loss" in r and r["epoch"] < 1]  # the pairs are revisited every epoch
    first, last = losses[:len(epoch)], losses[-len(epoch):]
    assert sum(last) / len(last) < sum(first) / len(first) - 0.1, losses  # the DPO loss falls on the run's pairs
    assert [r["step"] for r in rows if "eval/stream/timing_f1" in r] == [6, 12]
