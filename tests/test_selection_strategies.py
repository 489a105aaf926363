"""Offline selection strategies on hand-made statistics: which ids each one keeps, weights, plugins, errors."""

from __future__ import annotations

import pytest

from data_selection.stats import SampleStats
from data_selection.strategies import SelectionError, apply_strategy, largest_remainder
from rlvid.algos.registry import UnknownNameError


def row(i: str, task: str, mean: float, variance: float, pass_rate: float, **reward_means) -> SampleStats:
    return SampleStats(id=i, task=task, k=4, rewards=[], mean=mean, variance=variance, std=variance ** 0.5,
                       min=0.0, max=1.0, pass_rate=pass_rate, parse_rate=1.0, reward_means=reward_means)


# Three mcq and four temporal-grounding samples; `iou` is the grounding reward's mean.
STATS = [
    row("a", "mcq", 0.0, 0.0, 0.0),  # always wrong
    row("b", "mcq", 1.0, 0.0, 1.0),  # always right
    row("c", "mcq", 0.5, 0.25, 0.5),
    row("d", "tg", 0.25, 0.1875, 0.25, iou=0.1),
    row("e", "tg", 0.3, 0.01, 0.0, iou=0.9),
    row("f", "tg", 0.75, 0.1875, 0.75, iou=0.5),
    row("g", "tg", 0.7, 0.01, 1.0, iou=0.0),
]


def kept(name, **kwargs):
    return apply_strategy(STATS, name, kwargs).ids


def test_none_keeps_everything_in_order():
    assert kept("none") == list("abcdefg")


@pytest.mark.parametrize(("threshold", "expected"), [(0.0, "cdefg"), (0.05, "cdf"), (0.25, "")])
def test_variance_threshold_is_strictly_above(threshold, expected):
    assert kept("variance_threshold", threshold=threshold) == list(expected)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"n": 3}, "cdf"),
    ({"n": 2}, "cd"),  # d and f tie at 0.1875: data order decides
    ({"fraction": 0.5}, "cdef"),  # ceil(3.5) = 4; e beats g on the 0.01 tie
    ({"fraction": 0.0}, ""),
    ({"n": 10}, "abcdefg"),
])
def test_top_variance(kwargs, expected):
    assert kept("top_variance", **kwargs) == list(expected)


def test_top_variance_needs_exactly_one_of_n_and_fraction():
    with pytest.raises(SelectionError, match="exactly one of n, fraction"):
        kept("top_variance", n=2, fraction=0.5)
    with pytest.raises(SelectionError, match="exactly one"):
        kept("top_variance")


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, "cdf"),  # mcq: quota 2, only c varies; tg: quota 2 of d, e, f, g -> d, f (highest variance)
    ({"fraction": 1.0}, "cdefg"),  # every sample whose rewards vary, never a or b
    ({"fraction": 1.0, "min_variance": 0.05}, "cdf"),
    ({"fraction": 0.25}, "cd"),  # ceil(0.75) = 1 per task
])
def test_variance_aware_keeps_top_fraction_per_task_and_never_zero_variance(kwargs, expected):
    assert kept("variance_aware", **kwargs) == list(expected)


def test_variance_aware_keeps_nothing_when_no_reward_varies():
    flat = [row(i, "mcq", 1.0, 0.0, 1.0) for i in "xyz"]
    assert apply_strategy(flat, "variance_aware").ids == []


def test_variance_aware_refuses_bad_options():
    with pytest.raises(SelectionError, match="fraction must be in"):
        kept("variance_aware", fraction=0.0)
    with pytest.raises(SelectionError, match="by='nope'"):
        kept("variance_aware", by="nope")


def test_kept_line_counts_equal_reward_samples_and_flags_keeping_everything():
    from data_selection.report import kept_line

    assert kept_line(STATS, ["c", "d"], "variance_aware") == (
        "kept 2 of 7 samples (variance_aware); 2 had equal rewards in all rollouts (no GRPO signal), 0 of them kept")
    assert "every sample was kept" in kept_line(STATS, list("abcdefg"), "none")


def test_recipe_default_strategy_is_variance_aware():
    from rlvid.config import OfflineSelection

    assert OfflineSelection().strategy == "variance_aware"


def test_drop_extremes_drops_all_correct_and_all_wrong():
    assert kept("drop_extremes") == list("cdf")


def test_difficulty_band_on_the_total_mean():
    assert kept("difficulty_band", low=0.0, high=0.7) == list("cdeg")  # (0, 0.7]: a (0) out, g (0.7) in
    assert kept("difficulty_band", low=0.0, high=0.7, include_low=True, include_high=False) == list("acde")


def test_difficulty_band_on_one_rewards_mean_drops_samples_it_never_applied_to():
    assert kept("difficulty_band", low=0.0, high=0.7, reward="iou") == list("df")  # mcq rows have no iou


def test_variance_weights_are_proportional_to_variance_with_mean_one():
    sel = apply_strategy(STATS, "variance_weights")
    assert sel.ids == list("cdefg")  # zero variance: weight 0, dropped
    total = 0.25 + 0.1875 + 0.01 + 0.1875 + 0.01
    assert sel.weights == pytest.approx({"c": 0.25 * 5 / total, "d": 0.1875 * 5 / total, "e": 0.01 * 5 / total,
                                         "f": 0.1875 * 5 / total, "g": 0.01 * 5 / total})
    floored = apply_strategy(STATS, "variance_weights", {"power": 0.5, "floor": 0.1}).weights
    assert list(floored) == list("abcdefg") and floored["a"] == floored["b"] < floored["e"] < floored["c"]
    assert sum(floored.values()) == pytest.approx(7.0)


def test_stratified_fraction_keeps_the_task_mix():
    sel = kept("stratified", strategy="top_variance", kwargs={"fraction": 0.5})
    assert sel == list("acdf")  # mcq: ceil(1.5) = 2 of 3 (c, then a on the tie); tg: 2 of 4 (d, f)


def test_stratified_splits_n_in_proportion_to_task_sizes():
    assert largest_remainder(3, [3, 4]) == [1, 2]
    assert kept("stratified", strategy="top_variance", kwargs={"n": 3}) == list("cdf")
    assert kept("top_variance", n=3) == list("cdf")
    assert kept("stratified", strategy="top_variance", kwargs={"n": 2}) == list("cd")  # 0.86 vs 1.14: mcq 1, tg 1
    assert kept("top_variance", n=4) == list("cdef")  # globally three of the four are grounding samples
    assert kept("stratified", strategy="top_variance", kwargs={"n": 4}) == list("acdf")  # 1.71 / 2.29 -> 2 and 2


def test_stratified_balance_restores_the_original_proportions():
    # drop_extremes keeps 1/3 of mcq (c) and 2/4 of tg (d, f): balance cuts tg to round(4/3) = 1.
    assert kept("stratified", strategy="drop_extremes") == list("cdf")
    assert kept("stratified", strategy="drop_extremes", balance=True) == list("cd")


def test_stratified_passes_weights_through():
    weights = apply_strategy(STATS, "stratified", {"strategy": "variance_weights"}).weights
    assert weights["c"] == pytest.approx(1.0)  # the only kept mcq sample: mean 1 within its task
    assert weights["d"] + weights["e"] + weights["f"] + weights["g"] == pytest.approx(4.0)


def test_user_strategy_by_file_path_and_inside_stratified(tmp_path):
    (tmp_path / "mine.py").write_text(
        "def by_mean(stats, *, min_mean=0.5):\n    return {s.id: 2.0 for s in stats if s.mean >= min_mean}\n")
    sel = apply_strategy(STATS, "./mine.py:by_mean", {"min_mean": 0.6}, base_dir=tmp_path)
    assert sel.weights == {"b": 2.0, "f": 2.0, "g": 2.0}
    inner = apply_strategy(STATS, "stratified", {"strategy": "./mine.py:by_mean"}, base_dir=tmp_path)
    assert inner.ids == list("bcfg")


def test_user_strategy_by_module_path():
    assert apply_strategy(STATS, "data_selection.strategies:drop_extremes").ids == list("cdf")


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"selection strategy 'top_varience'.*Did you mean 'top_variance'"):
        kept("top_varience")


def test_bad_options_and_results_name_the_strategy(tmp_path):
    with pytest.raises(SelectionError, match=r"'variance_threshold': unknown option\(s\) \['thresh'\]; allowed: "
                                             r"\['threshold'\]"):
        kept("variance_threshold", thresh=0.1)
    with pytest.raises(SelectionError, match=r"'stratified': missing required option\(s\) \['strategy'\]"):
        kept("stratified")
    with pytest.raises(SelectionError, match=r"by='video' is not a stats field"):
        kept("stratified", strategy="none", by="video")
    (tmp_path / "bad.py").write_text("def ghost(stats):\n    return ['a', 'zz']\n"
                                     "def twice(stats):\n    return ['a', 'a']\n"
                                     "def negative(stats):\n    return {'a': -1.0}\n")
    for fn, message in [("ghost", r"unknown id\(s\) \['zz'\]"), ("twice", "more than once"),
                        ("negative", "weight of 'a' must be finite and >= 0")]:
        with pytest.raises(SelectionError, match=message):
            apply_strategy(STATS, f"./bad.py:{fn}", base_dir=tmp_path)
    with pytest.raises(SelectionError, match="file not found"):
        apply_strategy(STATS, "./missing.py:fn", base_dir=tmp_path)
    with pytest.raises(SelectionError, match="has no function 'nope'"):
        apply_strategy(STATS, "./bad.py:nope", base_dir=tmp_path)
