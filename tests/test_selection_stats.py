"""Per-sample rollout statistics, stats files, answer parse rate, the weighted sampler and the summary table."""

from __future__ import annotations

import pytest

from data_selection.report import format_summary, summarize
from data_selection.sampler import sample_weights, weighted_order, weighted_sampler
from data_selection.stats import answer_parsed, pass_thresholds, read_stats, sample_stats, write_stats
from rlvid.data.sample import Sample

MCQ = Sample(id="m1", video="v.mp4", duration=10.0, task="mcq", question="Which colour?",
             options=["red", "green", "blue", "white"], answer="B")
TG = Sample(id="t1", video="v.mp4", duration=10.0, task="temporal_grounding", question="When?",
            intervals=[(2.0, 4.0)])


def test_mcq_stats_mean_variance_pass_and_parse_rates():
    completions = ["<answer>B</answer>", "<think>x</think><answer>(C)</answer>", "no tags B", "<answer> </answer>"]
    scores = {"format": [1.0, 1.0, 0.0, 0.0], "accuracy": [1.0, 0.0, 0.0, 0.0]}
    thresholds = pass_thresholds(scores, {"format": 0.5, "accuracy": 1.0}, 4)
    assert thresholds == [0.75] * 4  # half of 0.5 + 1.0: both rewards apply to an mcq rollout
    s = sample_stats(MCQ, [1.5, 0.5, 0.0, 0.0], completions, scores, thresholds=thresholds)
    assert (s.k, s.mean, s.variance, s.min, s.max) == (4, 0.5, 0.375, 0.0, 1.5)
    assert s.std == pytest.approx(0.375 ** 0.5)
    assert s.pass_rate == 0.25  # only 1.5 >= 0.75
    assert s.parse_rate == 0.5  # "B" and "(C)" parse; no tags / empty answer do not
    assert s.reward_means == {"format": 0.5, "accuracy": 0.25}
    assert s.to_sample() == MCQ


def test_pass_threshold_counts_only_the_rewards_that_apply():
    scores = {"accuracy": [None, None, None], "temporal_iou": [0.9, 0.4, 0.5], "format": [1.0, 0.0, None]}
    weights = {"accuracy": 1.0, "temporal_iou": 2.0, "format": 0.5, "penalty": -1.0}
    assert pass_thresholds(scores, weights, 3) == [1.25, 1.25, 1.0]
    assert pass_thresholds(scores, weights, 3, pass_threshold=0.3) == [0.3, 0.3, 0.3]
    s = sample_stats(TG, [1.8, 0.8, 1.0], ["", "", ""], scores, thresholds=[1.25, 1.25, 1.0])
    assert s.pass_rate == pytest.approx(2 / 3)
    assert s.reward_means == {"accuracy": None, "temporal_iou": pytest.approx(0.6), "format": 0.5}


@pytest.mark.parametrize(("sample", "text", "parsed"), [
    (TG, "<answer>2.0 to 4.5 seconds</answer>", True),
    (TG, "<answer>soon</answer>", False),
    (TG, "2.0 to 4.5", False),  # no answer block
    (MCQ, "<answer>green</answer>", True),  # the option's text
    (MCQ, "<answer>purple</answer>", False),
    (MCQ, "<answer>F</answer>", False),  # outside the four options
])
def test_answer_parsed_uses_the_task_parser(sample, text, parsed):
    assert answer_parsed(text, sample) is parsed


def test_stats_round_trip_through_jsonl_and_parquet(tmp_path):
    rows = [
        sample_stats(MCQ, [1.0, 0.0], ["<answer>B</answer>", "x"], {"acc": [1.0, 0.0], "iou": [None, None]},
                     thresholds=[0.5, 0.5]),
        sample_stats(TG, [0.25, 0.5], ["a", "b"], {"acc": [None, None], "iou": [0.25, 0.5]},
                     thresholds=[0.5, 0.5]),
    ]
    jsonl, parquet = write_stats(rows, tmp_path)
    assert read_stats(jsonl) == rows
    assert read_stats(parquet) == rows
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert {"id", "mean", "variance", "pass_rate", "parse_rate", "rewards", "mean/acc", "mean/iou"} <= set(
        table.column_names)
    assert table.column("mean/iou").to_pylist() == [None, 0.375]


def test_read_stats_names_a_bad_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "x"}\nnot json\n')
    with pytest.raises(ValueError, match=r"s.jsonl:1: not a stats row"):
        read_stats(path)


def test_weighted_sampler_follows_the_selection_weights():
    samples = [Sample(id=str(i), video="v", duration=1.0, task="open_qa", question="q", answer="a",
                      meta={"selection": {"weight": w}}) for i, w in enumerate([0.0, 1.0, 0.0, 3.0])]
    samples.append(Sample(id="4", video="v", duration=1.0, task="open_qa", question="q", answer="a"))
    assert sample_weights(samples) == [0.0, 1.0, 0.0, 3.0, 1.0]
    draws = list(weighted_sampler(sample_weights(samples), seed=0, num_samples=500))
    assert draws.count(0) == draws.count(2) == 0
    assert draws.count(3) > 2 * draws.count(1) and draws.count(3) > 2 * draws.count(4)
    assert weighted_order(samples, seed=1, epoch=2) == weighted_order(samples, seed=1, epoch=2)
    assert weighted_order(samples, seed=1, epoch=2) != weighted_order(samples, seed=1, epoch=3)
    assert len(weighted_order(samples, seed=1)) == 5


def test_summary_counts_and_averages_per_task():
    half = {"thresholds": [0.5, 0.5]}
    rows = [sample_stats(MCQ, [1.0, 0.0], ["", ""], **half), sample_stats(TG, [0.5, 0.5], ["", ""], **half)]
    rows.append(sample_stats(Sample(id="t2", video="v", duration=5.0, task="temporal_grounding", question="q",
                                    intervals=[(1.0, 2.0)]), [0.0, 1.0], ["", ""], **half))
    summary = summarize(rows, ["m1", "t2"])
    assert summary["temporal_grounding"] == {
        "before": 2, "after": 1, "mean_before": 0.5, "mean_after": 0.5, "variance_before": 0.125,
        "variance_after": 0.25, "pass_rate_before": 0.75, "pass_rate_after": 0.5, "parse_rate_before": 0.0,
        "parse_rate_after": 0.0}
    assert (summary["all"]["before"], summary["all"]["after"], summary["all"]["variance_after"]) == (3, 2, 0.25)
    table = format_summary(summary).splitlines()
    assert table[0].split()[:3] == ["task", "before", "after"]
    assert table[2].split()[:6] == ["mcq", "1", "1", "0.5000", "->", "0.5000"]
    assert table[-1].split()[:3] == ["all", "3", "2"]
