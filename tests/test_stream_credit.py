"""Per-decision credit: reward-to-go from scored prefixes, GRPO per (stream, chunk), one advantage per decision."""

import pytest
import torch

from rewards import compose_rewards
from rlvid.data.sample import Sample, StreamEvent
from rlvid.models.stream_lm import StreamVocab
from rlvid.rollout.streaming import StreamChunk, teacher_trajectory
from rlvid.trainers.stream_credit import decision_advantages, decision_index, reward_to_go, token_advantages

WORDS = "tell me when the red circle appears".split()
QUESTION = "Tell me when the red circle appears."
SAMPLE = Sample("s", "s.mp4", 4.0, "open_qa", QUESTION, answer="red circle",
                stream_events=[StreamEvent(2.0, "red circle")])
REWARDS = compose_rewards([{"name": "stream_timing", "kwargs": {"early_penalty": 0.5, "spurious_penalty": 0.25}}])


def _chunks(n=4):
    return [StreamChunk(float(k), float(k + 1), torch.zeros(2, 8, 8, 3, dtype=torch.uint8)) for k in range(n)]


def _traj(said):
    return teacher_trajectory(StreamVocab(WORDS, max_chunks=8), QUESTION, _chunks(), said)


def test_reward_to_go_splits_the_trajectory_reward_over_its_decisions():
    # early after chunk 0 (t=1, -0.5), on time after chunk 2 (t=3, +1), a repeat after chunk 3 (t=4, -0.25)
    t = _traj({0: "red", 2: "red circle", 3: "red"})
    rtg = reward_to_go(REWARDS, [SAMPLE], [t], [[1.0, 2.0, 3.0, 4.0]])
    assert rtg[0].tolist() == pytest.approx([0.25, 0.75, 0.75, -0.25])
    silent = reward_to_go(REWARDS, [SAMPLE], [_traj({})], [[1.0, 2.0, 3.0, 4.0]])
    assert silent[0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_decision_advantages_compare_decisions_taken_from_the_same_tree_node_only():
    vocab = StreamVocab(WORDS, max_chunks=8)
    a, b, c = _traj({2: "red circle"}), _traj({0: "red"}), _traj({3: "red circle"})
    rtg = torch.tensor([[1.0, 1.0, 1.0, 0.0], [-0.5, 0.0, 0.0, 0.0], [0.4, 0.4, 0.4, 0.4]])
    adv = decision_advantages(rtg, [a, b, c], vocab, num_generations=3)
    assert adv[0, 0] > adv[2, 0] > 0 > adv[1, 0]  # chunk 0: all three at the start node
    assert adv[1, 1] == 0 and adv[0, 1] > 0 > adv[2, 1]  # chunk 1: b spoke, so it stands alone
    assert adv[0, 3] == 0 and adv[2, 3] == 0  # chunk 3: a spoke at chunk 2, so a and c differ
    apart = decision_advantages(rtg, [a, b, c], vocab, num_generations=1)  # three streams: no comparison
    assert torch.all(apart == 0)


def test_every_token_of_a_decision_carries_its_advantage_and_nothing_else_does():
    vocab = StreamVocab(WORDS, max_chunks=8)
    t = _traj({2: "red circle"})
    index = decision_index(t, vocab)
    policy = [i for i, m in enumerate(t.policy_mask) if m]
    assert [index[i] for i in policy] == [0, 1, 2, 2, 2, 3]  # silent, silent, red circle <end>, silent
    per_decision = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    adv = token_advantages(per_decision, [t], vocab, len(t.ids) - 1)
    chosen = [adv[0, i - 1].item() for i in policy]  # position i-1 predicts token i
    assert chosen == [10.0, 20.0, 30.0, 30.0, 30.0, 40.0]
    prompt = len(vocab.encode(QUESTION))
    assert torch.all(adv[0, :prompt] == 0)  # the question precedes every decision
