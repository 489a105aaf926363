"""SODA_c, tIoU-averaged caption metrics and localisation P/R against hand-computed cases.

The METEOR tests run the real Java scorer: without Java they fail (CI installs it), they do not skip.
"""

from __future__ import annotations

import pytest

from rewards.captions import CaptionScorer, FunctionScorer, MeteorScorer, get_caption_scorer, normalize_caption
from rewards.dense_caption import caption_metric_many, dense_caption_reward, localization_pr
from rewards.soda import optimal_matching, soda_c, soda_c_many
from rlvid.data.sample import Event


def exact(h: str, r: str) -> float:
    """Deterministic caption scorer for hand computation: 1 if equal, else 0."""
    return 1.0 if h == r else 0.0


GT = [Event(0, 10, "a"), Event(10, 20, "b"), Event(20, 30, "c")]


def test_optimal_matching_preserves_order():
    # A crossing matching would total 1.8; order-preserving allows only one of the two.
    total, pairs = optimal_matching([[0.1, 0.9], [0.9, 0.1]])
    assert total == pytest.approx(0.9)
    assert pairs in ([(0, 1)], [(1, 0)])
    total, pairs = optimal_matching([[1.0, 0.0, 0.0], [0.0, 0.0, 0.8], [0.0, 0.5, 0.0]])
    assert total == pytest.approx(1.8)
    assert pairs == [(0, 0), (1, 2)]
    assert optimal_matching([]) == (0.0, [])


def test_soda_c_hand_computed():
    # Sorted predictions: p1 [0,10] "a", p4 [5,25] "x", p2 [12,20] "b", p3 [18,30] "c".
    # Weights IoU x exact: g1-p1 = 1, g2-p2 = 0.8, g3-p3 = 10/12; "x" matches no caption.
    # Best order-preserving sum S = 1 + 0.8 + 10/12; F = 2S / (|P| + |G|) = 2S / 7.
    pred = [Event(12, 20, "b"), Event(0, 10, "a"), Event(18, 30, "c"), Event(5, 25, "x")]
    s = 1 + 0.8 + 10 / 12
    assert soda_c(pred, GT, exact) == pytest.approx(2 * s / 7)


def test_soda_c_perfect_redundant_and_empty():
    assert soda_c(GT, GT, exact) == pytest.approx(1.0)
    # Each event predicted twice: S = 3, P = 3/6, R = 1 -> F = 2/3
    assert soda_c(GT + GT, GT, exact) == pytest.approx(2 / 3)
    # Right captions in the wrong order: only an order-preserving subset can count.
    shuffled = [Event(0, 10, "c"), Event(10, 20, "b"), Event(20, 30, "a")]
    assert soda_c(shuffled, GT, exact) == pytest.approx(1 / 3)  # only "b" matches in place
    assert soda_c([], GT, exact) == 0.0
    assert soda_c(GT, [], exact) == 0.0


def test_soda_c_many_with_unbatched_scorer():
    class Counting(FunctionScorer):
        batchable = False
        calls = 0

        def pairs(self, hyps, refs):
            Counting.calls += 1
            return super().pairs(hyps, refs)

    scorer = Counting(exact)
    assert soda_c_many([GT, GT[:1]], [GT, GT], scorer) == pytest.approx([1.0, 2 * 1 / 4])
    assert Counting.calls == 2  # once per video: pairs depend on the call (like CIDEr's IDF)


def test_tiou_averaged_caption_metric_hand_computed():
    # p [2,12] "x" vs g1 [0,10] "x" (IoU 8/12) and g2 [5,15] "y" (IoU 7/13).
    # tIoU 0.3 and 0.5: pairs (x,x)=1 and (x,y)=0 -> 0.5 each; 0.7 and 0.9: unmatched -> 0.
    pred = [Event(2, 12, "x")]
    gt = [Event(0, 10, "x"), Event(5, 15, "y")]
    assert caption_metric_many([pred, []], [gt, gt], exact) == pytest.approx([0.25, 0.0])


def test_localization_pr_hand_computed():
    pred = [Event(2, 12, "x")]
    gt = [Event(0, 10, "x"), Event(5, 15, "y")]
    # > 0.3 and > 0.5: p hits both -> P = 1, R = 1; > 0.7, > 0.9: nothing -> 0, 0.
    assert localization_pr(pred, gt) == pytest.approx((0.5, 0.5))
    # Strictly greater: IoU exactly 0.5 does not count at 0.5.
    assert localization_pr([Event(0, 10, "x")], [Event(0, 5, "x")], tious=[0.5]) == (0.0, 0.0)
    assert localization_pr([], gt) == (0.0, 0.0)


def test_meteor_tiou_averaged_hand_computed():
    """Real METEOR: identical captions score 1, unrelated ones 0. A prediction with IoU 0.6 is
    paired at tIoU 0.3 and 0.5 (score 1) and unmatched at 0.7 and 0.9 (score 0): mean 0.5."""
    meteor = get_caption_scorer("meteor")
    assert isinstance(meteor, MeteorScorer)
    cap = "a man is running in the park"
    gt = [Event(0, 10, cap)]
    assert caption_metric_many(
        [[Event(0, 6, cap)], [Event(0, 10, "purple elephants sing")], []], [gt, gt, gt], meteor
    ) == pytest.approx([0.5, 0.0, 0.0])


def test_meteor_scores_and_soda_with_meteor():
    meteor = get_caption_scorer("meteor")
    a, b = "a man is running in the park", "a woman is walking in a garden"
    pair_scores = meteor.pairs([a, b, "purple elephants"], [a, a, a])
    assert pair_scores[0] == pytest.approx(1.0)
    assert 0.0 < pair_scores[1] < 1.0
    assert pair_scores[2] == 0.0
    # The corpus score is METEOR's aggregate, not the mean of the pairs.
    assert meteor.corpus([a, b], [a, a]) != pytest.approx((pair_scores[0] + pair_scores[1]) / 2)
    assert meteor.corpus_many([([a], [a]), ([], [])]) == [pytest.approx(1.0), 0.0]
    assert soda_c([Event(0, 10, a)], [Event(0, 10, a)], meteor) == pytest.approx(1.0)


def test_meteor_batches_cross_chunk_boundaries():
    meteor = get_caption_scorer("meteor")
    hyps = [f"a man number {i}" if i % 2 else "purple elephants" for i in range(700)]
    refs = [f"a man number {i}" for i in range(700)]
    expected = [1.0 if k % 2 else 0.0 for k in range(700)]
    assert meteor.pairs(hyps, refs) == pytest.approx(expected)
    # one group larger than a chunk, then many small ones
    groups = [(["a big cap"] * 300, ["a big cap"] * 300), (["x"], ["y"])] + [([f"w{k}"], [f"w{k}"]) for k in range(300)]
    assert meteor.corpus_many(groups) == pytest.approx([1.0, 0.0] + [1.0] * 300)


def test_meteor_without_java_fails_clearly(monkeypatch):
    monkeypatch.setattr("rewards.captions.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="Java runtime"):
        MeteorScorer().pairs(["a"], ["a"])


def test_cider_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    hyps = ["a man runs in the park", "a dog barks", "two people talk"]
    refs = ["a man is running in a park", "the dog barks loudly", "a cat sleeps"]
    ours = get_caption_scorer("cider").pairs(hyps, refs)
    _, theirs = Cider().compute_score({i: [r] for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})
    assert ours == pytest.approx(list(theirs))
    assert ours[0] > 0.0 and ours[2] == 0.0


def test_normalize_caption():
    assert normalize_caption("A Man, running |||\nfast!  caf\u00e9") == "a man running fast caf"


def test_caption_scorer_lookup():
    assert isinstance(get_caption_scorer(exact), CaptionScorer)
    assert get_caption_scorer("rouge_l").pairs(["a man runs"], ["a man runs"]) == [1.0]
    with pytest.raises(ValueError, match="unknown caption scorer"):
        get_caption_scorer("bleu")


def test_dense_caption_reward():
    comps = [
        "<think>t</think><answer>0 - 10 seconds, a. 10 - 20 seconds, b. 20 - 30 seconds, c.</answer>",
        "<answer>no events</answer>",
        "<answer>B</answer>",
    ]
    events = [[{"start": e.start, "end": e.end, "caption": e.caption} for e in GT], GT, None]
    task = ["dense_caption", "dense_caption", "mcq"]
    out = dense_caption_reward(comps, events=events, task=task, duration=[30.0] * 3, caption_scorer=exact)
    assert out == [pytest.approx(1.0), 0.0, None]
    out = dense_caption_reward(comps, events=events, task=task, metric=["soda_c", "precision", "recall"],
                               caption_scorer=exact)
    assert out == {"soda_c": [pytest.approx(1.0), 0.0, None], "precision": [1.0, 0.0, None],
                   "recall": [1.0, 0.0, None]}


def test_dense_caption_reward_rejects_bad_metric():
    with pytest.raises(ValueError, match="option 'metric'"):
        dense_caption_reward(["x"], events=[GT], metric="bleu")
