"""Per-decision credit: reward-to-go from scored prefixes, GRPO per (stream, chunk), one advantage per decision."""

import pytest
import torch

from rewards import compose_rewards
from rlvid.data.sample import Sample, StreamEvent
from rlvid.models.stream_lm import StreamVocab
from rlvid.rollout.streaming import StreamChunk, teacher_trajectory
from rlvid.trainers.stream_credit import decision_index, reward_to_go, tree_advantages

WORDS = "tell me when the red circle appears".split()
QUESTION = "Tell me when the red circle appears."
SAMPLE = Sample("s", "s.mp4", 4.0, "open_qa", QUESTION, answer="red circle",
                stream_events=[StreamEvent(2.0, "red circle")])
REWARDS = compose_rewards([{"name": "stream_timing", "kwargs": {"early_penalty": 0.5, "spurious_penalty": 0.25}},
                           {"name": "stream_content", "weight": 0.5}])


def _chunks(n=4):
    return [StreamChunk(float(k), float(k + 1), torch.zeros(2, 8, 8, 3, dtype=torch.uint8)) for k in range(n)]


def _traj(said):
    return teacher_trajectory(StreamVocab(WORDS, max_chunks=8), QUESTION, _chunks(), said)


def test_reward_to_go_splits_the_trajectory_reward_over_its_decisions():
    # early after chunk 0 (t=1, -0.5), on time after chunk 2 (t=3, +1), a repeat after chunk 3 (t=4, -0.25)
    t = _traj({0: "red", 2: "red circle", 3: "red"})
    rtg, words = reward_to_go(REWARDS, [SAMPLE], [t], [[1.0, 2.0, 3.0, 4.0]], word_rewards=["stream_content"])
    assert rtg[0].tolist() == pytest.approx([0.25 + 0.5, 0.75 + 0.5, 0.75 + 0.5, -0.25])
    assert words[0].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.0])  # only the on-time "red circle" has content
    silent, _ = reward_to_go(REWARDS, [SAMPLE], [_traj({})], [[1.0, 2.0, 3.0, 4.0]])
    assert silent[0].tolist() == [0.0, 0.0, 0.0, 0.0]


def _choices(decision, words, t):
    """(decision advantage, word advantage) of each policy token of `t` (position i-1 predicts token i)."""
    return [(decision[i - 1].item(), words[i - 1].item()) for i, m in enumerate(t.policy_mask) if m]


def test_tree_advantages_compare_choices_made_at_the_same_node_only():
    vocab = StreamVocab(WORDS, max_chunks=8)
    a, b, c = _traj({2: "red circle"}), _traj({0: "red"}), _traj({3: "red circle"})
    rtg = torch.tensor([[1.0, 1.0, 1.0, 0.0], [-0.5, 0.0, 0.0, 0.0], [0.4, 0.4, 0.4, 0.4]])
    words = torch.tensor([[0.5, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2]])
    length = max(len(t.ids) for t in (a, b, c)) - 1
    dec, wrd = tree_advantages(rtg, words, [a, b, c], vocab, num_generations=3, length=length)
    ca, cb, cc = (_choices(dec[i], wrd[i], t) for i, t in enumerate((a, b, c)))
    # a: silent, silent, red circle <end>, silent; b: red <end>, silent x3; c: silent x3, red circle <end>
    assert ca[0][0] > cc[0][0] > 0 > cb[0][0]  # chunk 0: all three decide at the start node
    assert ca[1][0] > 0 > cc[1][0]  # chunk 1: a and c (both still silent) share a node; b is alone
    assert ca[2][0] > 0 > cc[2][0]  # chunk 2: a speaks (its reward-to-go 1.0), c waits (0.4)
    # alone at a node, a choice gets what its own decision earned: a's words their content (0.5)
    assert ca[2][1] == ca[3][1] == ca[4][1] == pytest.approx(0.5) and ca[5] == (0.0, 0.0)
    assert cc[3] == pytest.approx((0.4, 0.2)) and cb[1:] == [(0.0, 0.0)] * 4
    assert all(w == 0 for d, w in ca[:2] + cc[:3])  # silences have no word choice
    assert torch.all(dec[:, :len(vocab.encode(QUESTION))] == 0)  # the question precedes every decision
    apart = tree_advantages(rtg, words, [a, b, c], vocab, num_generations=1, length=length, singleton_own=False)
    assert all(torch.all(x == 0) for x in apart)  # three streams, nothing shared: no comparison at all


def test_further_words_are_valued_by_the_word_rewards_only():
    vocab = StreamVocab(WORDS, max_chunks=8)
    good, bad = _traj({1: "red circle"}), _traj({1: "red red"})
    rtg = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # same timing reward
    words = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # only "red circle" is right
    dec, wrd = tree_advantages(rtg, words, [good, bad], vocab, num_generations=2, length=len(good.ids) - 1)
    cg, cb = _choices(dec[0], wrd[0], good), _choices(dec[1], wrd[1], bad)
    assert cg[1][0] == cb[1][0] == 0  # both chose to speak after chunk 1 and earned the same timing
    assert cg[2][1] > 0 > cb[2][1] and cg[2][0] == cb[2][0] == 0  # "circle" vs "red": the content decides
    assert decision_index(good, vocab)[-1] == 3
