"""M-DPO pair building: the pairing rule on hand-made scores, the pair folder (resume bookkeeping), building
with a scripted engine (metric, CoTasks turns, resume after a crash) and `rlvid mdpo-pairs` with the real engine."""

from __future__ import annotations

import json

import pytest
from tiny_setup import make_tiny_setup, write_recipe

from rlvid.config import load_recipe
from rlvid.data.sample import Event, Sample
from rlvid.rollout import Rollouts
from rlvid.trainers.loop import make_accelerator
from rlvid.trainers.mdpo.build import build_pairs
from rlvid.trainers.mdpo.cotasks import ChainPrompt
from rlvid.trainers.mdpo.pairs import (
    Pair,
    PairWriter,
    finished_prompt_ids,
    form_pairs,
    is_complete,
    read_pairs,
)

# ---------------------------------------------------------------- the pairing rule


def test_every_pair_with_a_gap_at_least_the_threshold_higher_score_chosen_largest_gap_first():
    scores = [0.2, 0.9, 0.5, 0.45]
    assert form_pairs(scores, min_gap=0.1) == [(1, 0), (1, 3), (1, 2), (2, 0), (3, 0)]
    assert form_pairs(scores, min_gap=0.3) == [(1, 0), (1, 3), (1, 2), (2, 0)]  # 0.45 - 0.2 < 0.3 is dropped
    assert form_pairs([0.6, 0.7], min_gap=0.1) == [(1, 0)]  # "at least": a gap equal to the threshold pairs
    assert form_pairs(scores, min_gap=0.1, max_pairs=2) == [(1, 0), (1, 3)]


def test_ties_never_pair_and_all_equal_scores_give_no_pairs():
    assert form_pairs([0.5, 0.5, 0.5, 0.5]) == []
    assert form_pairs([0.5, 0.5, 0.1]) == [(0, 2), (1, 2)]  # the tie (0, 1) is not a pair, even with min_gap 0
    assert form_pairs([1.0, 0.0], min_gap=1.5) == []


def test_equal_gaps_are_ordered_by_index_and_unscored_or_repeated_samples_skipped():
    assert form_pairs([0.0, 1.0, 0.0, 1.0]) == [(1, 0), (3, 0), (1, 2), (3, 2)]
    assert form_pairs([0.3, None, float("nan"), 0.8]) == [(3, 0)]
    texts = ["a", "b", "a", "c"]
    assert form_pairs([0.1, 0.5, 0.9, 0.3], texts=texts) == [(1, 0), (1, 3), (3, 0)]  # the second "a" is skipped
    with pytest.raises(ValueError, match="min_gap"):
        form_pairs([0.1], min_gap=-1)


# ---------------------------------------------------------------- the pair folder


def _sample(i: int) -> Sample:
    return Sample(id=f"s{i}", video=f"v{i}.mp4", duration=10.0, task="temporal_grounding", question="When?",
                  intervals=[(1.0, 2.0)])


def _pair(i: int, batch: str, chosen: str = "good") -> Pair:
    return Pair(f"s{i}", _sample(i), chosen, "bad", 0.9, 0.1, batch=batch)


def test_pairs_round_trip_and_pairs_of_unfinished_batches_are_ignored(tmp_path):
    w = PairWriter(tmp_path, rank=0)
    w.write_batch("b1", ["s0", "s1"], [[0.9, 0.1], [0.5, 0.5]], [_pair(0, "b1")])
    # a crashed batch: its pairs were written, its done lines were not
    w.write_batch("b2", [], [], [_pair(2, "b2")])
    # s0 redone by a later batch on another process: only the later attempt's pairs count
    PairWriter(tmp_path, rank=1).write_batch("b3", ["s0"], [[0.8, 0.2]], [_pair(0, "b3", chosen="better")])
    with open(tmp_path / "done-rank1.jsonl", "a") as f:
        f.write('{"id": "s9", "sco')  # a line cut short by a crash
    assert finished_prompt_ids(tmp_path) == {"s0", "s1"}
    (pair,) = read_pairs(tmp_path)
    PairWriter(tmp_path, rank=1).write_batch("b4", ["s5"], [[0.1, 0.2]], [])  # a restart cuts the torn line first
    assert finished_prompt_ids(tmp_path) == {"s0", "s1", "s5"}
    assert pair.chosen == "better" and pair.sample == _sample(0) and pair.gap == pytest.approx(0.8)
    record = json.loads((tmp_path / "pairs-rank1.jsonl").read_text())
    assert record["video"] == "v0.mp4" and record["sample"]["intervals"] == [[1.0, 2.0]]
    assert not is_complete(tmp_path)


# ---------------------------------------------------------------- building with a scripted engine


class ScriptedEngine:
    """Returns, for each prompt, the scripted completions of its kind; counts the prompts it sampled."""

    script = {
        "dense_caption": ["<answer>0.0 - 2.0 seconds: a red circle</answer>", "<answer>1.0 to 2.0</answer>"] * 2,
        "temporal_grounding": ["<answer>1.0 to 2.0</answer>", "<answer>1.0 to 3.0</answer>",
                               "<answer>5.0 to 6.0</answer>", "<answer>1.0 to 2.0</answer>"],
        "count": ["<answer>2</answer>", "<answer>2</answer>", "<answer>3</answer>", "<answer>9</answer>"],
        "segments": ["<answer>0.0 - 2.0\n3.0 - 5.0</answer>", "<answer>0.0 - 2.0</answer>",
                     "<answer>7.0 - 9.0</answer>", "<answer>x</answer>"],
        "captions": ["<answer>a red circle appears\na blue square appears</answer>",
                     "<answer>a red circle appears</answer>", "<answer>nothing</answer>",
                     "<answer>a red circle appears\na blue square appears</answer>"],
    }
    sampled: list[str] = []
    fail_after: int | None = None

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def generate(self, batch, num_generations, sampling):
        if self.fail_after is not None and len(ScriptedEngine.sampled) >= self.fail_after:
            raise RuntimeError("killed")
        texts, index = [], []
        for k, p in enumerate(batch):
            ScriptedEngine.sampled.append(p.id)
            kind = p.name if isinstance(p, ChainPrompt) else p.task
            texts += self.script[kind][:num_generations]
            index += [k] * num_generations
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        return Rollouts(index, ids, texts, truncated=[False] * len(texts))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny model, and a train file of 8 grounding samples (truth [1, 2]) and 2 dense-captioning samples."""
    root = tmp_path_factory.mktemp("mdpo-pairs")
    s = make_tiny_setup(root, n=10)
    video = str(s["data"] / "videos" / "train-00000.mp4")
    rows = [Sample(id=f"g{i}", video=video, duration=6.0, task="temporal_grounding", question="When?",
                   intervals=[(1.0, 2.0)]) for i in range(8)]
    rows += [Sample(id=f"d{i}", video=video, duration=6.0, task="dense_caption", question="Describe.",
                    events=[Event(0.0, 2.0, "a red circle appears"), Event(3.0, 5.0, "a blue square appears")])
             for i in range(2)]
    (root / "train.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    return dict(s, train=root / "train.jsonl")


@pytest.fixture
def scripted(monkeypatch):
    ScriptedEngine.sampled = []
    ScriptedEngine.fail_after = None
    monkeypatch.setattr("rlvid.trainers.mdpo.build.make_engine",
                        lambda recipe, policy: ScriptedEngine(policy.tokenizer))
    return ScriptedEngine


def _recipe(setup, tmp_path, **mdpo):
    mdpo = {"num_samples": 4, "min_gap": 0.1, "generation_batch_size": 3, "cotasks": True,
            "cotasks_caption_scorer": "rouge_l", **mdpo}
    path = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", {
        "data": {"train": str(setup["train"])}, "trainer": {"algorithm": "mdpo"}, "mdpo": mdpo,
        "rewards": {"functions": [{"name": "temporal_iou"}]}})
    return load_recipe(path)


def test_pairs_from_the_metric_and_from_each_cotasks_turn(setup, tmp_path, scripted):
    recipe = _recipe(setup, tmp_path)
    out = build_pairs(recipe, str(setup["model"]), tmp_path / "pairs", make_accelerator(recipe), tmp_path)
    assert is_complete(out)
    pairs = read_pairs(out)
    grounding = [p for p in pairs if p.cotask is None]
    # IoU of the scripted answers against [1, 2]: 1, 0.5, 0 and a repeat of the first (skipped as a duplicate)
    by_prompt = {}
    for p in grounding:
        by_prompt.setdefault(p.prompt_id, []).append((p.chosen_score, p.rejected_score))
    assert all(sorted(v) == [(0.5, 0.0), (1.0, 0.0), (1.0, 0.5)] for v in by_prompt.values())
    assert len(by_prompt) == 8  # every temporal-grounding train sample
    turns = {(p.prompt_id.split("#")[1], round(p.chosen_score, 3), round(p.rejected_score, 3))
             for p in pairs if p.sample.id == "d0"}
    assert turns == {
        ("cotask0-count", 1.0, 0.5), ("cotask0-count", 1.0, 0.0), ("cotask0-count", 0.5, 0.0),
        ("cotask1-segments", 1.0, 0.667), ("cotask1-segments", 1.0, 0.0), ("cotask1-segments", 0.667, 0.0),
        ("cotask2-captions", 1.0, 0.667), ("cotask2-captions", 1.0, 0.0), ("cotask2-captions", 0.667, 0.0),
    }
    captions = next(p for p in pairs if p.prompt_id == "d0#cotask2-captions")
    assert captions.cotask == {"order": "segments_first", "turn": 2}
    assert captions.prompt.count("<|vision_start|>") == 1 and "0.0 - 2.0\n3.0 - 5.0" in captions.prompt
    assert all(p.ref_chosen_logp is not None and p.ref_chosen_logp < 0 and p.ref_model for p in pairs)
    summary = json.loads((out / "summary.json").read_text())
    # per chain: count 3 pairs (a repeated answer is skipped), segments 5 (scores 1, 2/3, 0, 0), captions 3
    assert summary["pairs"] == len(pairs) == 8 * 3 + 2 * (3 + 5 + 3)


def test_a_rerun_skips_finished_prompts_and_a_complete_folder(setup, tmp_path, scripted):
    recipe = _recipe(setup, tmp_path, cotasks=False, reference="model")
    acc = make_accelerator(recipe)
    scripted.fail_after = 3  # dies after the first generation batch
    with pytest.raises(RuntimeError, match="killed"):
        build_pairs(recipe, str(setup["model"]), tmp_path / "pairs", acc, tmp_path)
    first = list(scripted.sampled)
    assert len(first) == 3 and finished_prompt_ids(tmp_path / "pairs") == set(first)
    scripted.fail_after = None
    build_pairs(recipe, str(setup["model"]), tmp_path / "pairs", acc, tmp_path)
    redone = scripted.sampled[3:]
    assert not set(redone) & set(first) and len(redone) == 10 - 3  # 8 grounding + 2 dense, 3 done before
    pairs = read_pairs(tmp_path / "pairs")
    assert len(pairs) == 8 * 3 and len({p.id for p in pairs}) == len(pairs)  # dense: temporal IoU does not apply
    assert all(p.ref_chosen_logp is None for p in pairs)  # reference: model computes them while training
    build_pairs(recipe, str(setup["model"]), tmp_path / "pairs", acc, tmp_path)
    assert len(scripted.sampled) == 10  # complete: nothing sampled again
    recipe.mdpo.min_gap = 0.3
    with pytest.raises(ValueError, match=r"other settings \(min_gap: 0.1 -> 0.3\)"):
        build_pairs(recipe, str(setup["model"]), tmp_path / "pairs", acc, tmp_path)


def test_without_a_metric_samples_cannot_be_ranked(setup, tmp_path, scripted):
    recipe = _recipe(setup, tmp_path, cotasks=False)
    recipe.rewards.functions = []
    with pytest.raises(ValueError, match="set mdpo.metric or rewards.functions"):
        build_pairs(recipe, str(setup["model"]), tmp_path / "pairs", make_accelerator(recipe), tmp_path)


# ---------------------------------------------------------------- the command, with the real engine

LENGTH = "def length(completions, **kw):\n    return [min(len(c), 40) / 40 for c in completions]\n"


def test_mdpo_pairs_command_samples_scores_and_writes_pairs(setup, tmp_path, capsys):
    from rlvid.cli import main

    (tmp_path / "length.py").write_text(LENGTH)
    path = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", {
        "data": {"max_samples": 4}, "rollout": {"max_new_tokens": 6},
        "trainer": {"algorithm": "mdpo"}, "mdpo": {"min_gap": 0.05, "metric": [{"name": "./length.py:length"}]},
        "rewards": {"functions": [{"name": "format", "kwargs": {"think": "forbidden"}}]},  # mdpo.metric wins over these
    })
    out = str(tmp_path / "pairs")
    assert main(["mdpo-pairs", str(path), "mdpo.pairs_per_prompt=2", "--n", "3", "--out", out]) == 0
    pairs = read_pairs(tmp_path / "pairs")
    done = [json.loads(line) for line in open(tmp_path / "pairs" / "done-rank0.jsonl")]
    assert len(done) == 4 and all(len(d["scores"]) == 3 for d in done)
    assert pairs and all(p.gap >= 0.05 - 1e-9 for p in pairs)
    for p in pairs:
        assert p.chosen_score == pytest.approx(min(len(p.chosen), 40) / 40)
        assert p.chosen_ids and p.rejected_ids and p.ref_chosen_logp < 0 and p.ref_rejected_logp < 0
    assert max(sum(p.prompt_id == d["id"] for p in pairs) for d in done) <= 2
    # training on that ready folder (mdpo.pairs) uses it as it is: its stored reference log-probs, no new sampling
    from rlvid.app.train import run_train

    final = run_train(str(path), [f"mdpo.pairs={out}", "mdpo.pairs_per_step=2", "trainer.max_steps=1",
                                        "trainer.micro_batch_size_per_device=4"])
    assert (final / "complete").is_file() and not (tmp_path / "run" / "pairs").exists()
    printed = capsys.readouterr().out  # the end-of-run summary, as GRPO and SFT runs print it
    assert "mdpo: 1 steps in" in printed and f"final model: {final}" in printed and "resume:" in printed
    assert not (tmp_path / "run" / "reference_logps.jsonl").exists()
    (tmp_path / "pairs" / "complete").unlink()
    with pytest.raises(FileNotFoundError, match="not a complete pair folder"):
        run_train(str(path), [f"mdpo.pairs={out}", f"trainer.output_dir={tmp_path / 'again'}"])
