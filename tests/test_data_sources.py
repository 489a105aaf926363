"""Data from where users keep it: `path@split`, split aliases, Hub-style names (offline, from a local folder),
`data.column_map`, weighted mixes of several train files, and `data.video_root` checked at load."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data_selection.sampler import selection_weights, weighted_sampler
from rlvid.config import Recipe, load_recipe
from rlvid.data.loaders import DataError
from rlvid.data.recipe_data import load_split
from rlvid.data.sources import DataSource, mix_weight, parse_sources, split_spec

REPO = Path(__file__).resolve().parents[1]


def row(i: str, video: str = "videos/clip.mp4", **changes) -> dict:
    raw = {"id": i, "video": video, "duration": 10.0, "task": "temporal_grounding",
           "question": "When is the red circle visible?", "intervals": [[1.0, 4.0]]}
    return {**raw, **changes}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def touch_videos(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")  # existence is what data.check_video_files checks


def recipe_with(**data) -> Recipe:
    recipe = Recipe()
    for key, value in data.items():
        setattr(recipe.data, key, value)
    return recipe


# ---------------------------------------------------------------- parsing


def test_split_spec_and_entries():
    assert split_spec("my_data@validation") == ("my_data", "validation")
    assert split_spec("org/name@train") == ("org/name", "train")
    assert split_spec("clips.jsonl") == ("clips.jsonl", None)
    assert split_spec("a/b@c/d.jsonl") == ("a/b@c/d.jsonl", None)  # '@' in a folder name is no split
    sources = parse_sources([{"path": "a.jsonl", "weight": 2}, "b@dev"], "data.train", {"query": "question"})
    assert sources == [DataSource("a.jsonl", None, 2.0, {"query": "question"}),
                       DataSource("b", "dev", 1.0, {"query": "question"})]
    assert DataSource("x").splits_to_try("val") == ["val", "validation", "valid", "dev"]
    assert DataSource("x", "dev").splits_to_try("val") == ["dev"]


@pytest.mark.parametrize(("value", "message"), [
    ([{"path": "a.jsonl", "weight": 0}], r"data.train\[0\].weight: must be a number > 0, got 0"),
    ([{"path": "a.jsonl", "weight": "2"}], r"data.train\[0\].weight: must be a number > 0"),
    (["a.jsonl", {"file": "b.jsonl"}], r"data.train\[1\]: unknown key\(s\) \['file'\]; allowed: \['path'"),
    ([{"weight": 2}], r"data.train\[0\].path: must name a JSONL file or dataset"),
    ([3], r"data.train\[0\]: expected a path or \{path, weight, column_map\}"),
    ([{"path": "d", "column_map": {"q": 1}}], r"data.train\[0\].column_map: must map"),
])
def test_bad_entries_name_their_key(value, message):
    with pytest.raises(DataError, match=message):
        parse_sources(value, "data.train")


def test_recipe_accepts_a_weighted_list_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"base: {REPO / 'recipes' / 'base.yaml'}\n"
                    "data:\n  train: [{path: a.jsonl, weight: 2}, b.jsonl]\n  column_map: {query: question}\n"
                    "  video_root: media\n")
    recipe = load_recipe(path)
    # relative paths in a recipe file are relative to its folder (recipes/README.md "Paths")
    assert recipe.data.train == [{"path": str(tmp_path / "a.jsonl"), "weight": 2}, str(tmp_path / "b.jsonl")]
    assert recipe.data.column_map == {"query": "question"} and recipe.data.video_root == str(tmp_path / "media")
    assert load_recipe(path, ["data.train=/abs/c.jsonl"]).data.train == "/abs/c.jsonl"


# ---------------------------------------------------------------- mixing


def test_weighted_mix_is_deterministic_and_draws_by_weight(tmp_path):
    touch_videos(tmp_path, ["videos/clip.mp4"])
    write_jsonl(tmp_path / "a.jsonl", [row(f"a{i}") for i in range(5)])
    write_jsonl(tmp_path / "b.jsonl", [row(f"b{i}") for i in range(5)])
    recipe = recipe_with(train=[{"path": "a.jsonl", "weight": 3}, "b.jsonl"])
    samples = load_split(recipe, "train", base_dir=tmp_path)  # paths relative to the given folder
    assert [s.id for s in samples] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    assert [mix_weight(s) for s in samples] == [3.0] * 5 + [1.0] * 5
    weights = selection_weights(samples)
    assert weights == [3.0] * 5 + [1.0] * 5
    # the trainer's order (Trainer.batch_indices) is a function of (seed, epoch): a resumed run sees the same batches
    order = list(weighted_sampler(weights, seed=42, epoch=1))
    assert order == list(weighted_sampler(weights, seed=42, epoch=1))
    assert order != list(weighted_sampler(weights, seed=42, epoch=2))
    draws = Counter(samples[i].id[0] for epoch in range(200) for i in weighted_sampler(weights, 42, epoch))
    assert 2.6 < draws["a"] / draws["b"] < 3.4  # 3x per sample, same file sizes


def test_unweighted_list_concatenates_with_uniform_order(tmp_path):
    touch_videos(tmp_path, ["videos/clip.mp4"])
    write_jsonl(tmp_path / "a.jsonl", [row("a0")])
    write_jsonl(tmp_path / "b.jsonl", [row("b0")])
    samples = load_split(recipe_with(train=[str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]), "train")
    assert [s.id for s in samples] == ["a0", "b0"] and selection_weights(samples) is None


def test_ids_must_be_unique_across_sources_and_weights_are_train_only(tmp_path):
    touch_videos(tmp_path, ["videos/clip.mp4"])
    write_jsonl(tmp_path / "a.jsonl", [row("x")])
    write_jsonl(tmp_path / "b.jsonl", [row("y"), row("x")])
    with pytest.raises(DataError, match=r"b.jsonl:2: id 'x' is also at .*a.jsonl:1; ids must be unique across"):
        load_split(recipe_with(train=["a.jsonl", "b.jsonl"]), "train", base_dir=tmp_path)
    with pytest.raises(DataError, match="data.val: weights apply to data.train only"):
        load_split(recipe_with(val=[{"path": "a.jsonl", "weight": 2}]), "val", base_dir=tmp_path)


# ---------------------------------------------------------------- datasets


def save_dataset(folder: Path, splits: dict[str, list[dict]]) -> Path:
    import datasets

    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(folder))
    return folder


def test_save_to_disk_split_names_as_the_dataset_has_them(tmp_path):
    rows = [{**row("v0"), "query": "Where?"}]
    for r in rows:
        del r["question"]
    saved = save_dataset(tmp_path / "ds", {"train": rows, "validation": rows})
    touch_videos(saved, ["videos/clip.mp4"])
    recipe = recipe_with(train=f"{saved}@validation", val=str(saved), column_map={"query": "question"})
    train = load_split(recipe, "train")
    assert [s.id for s in train] == ["v0"] and train[0].question == "Where?"
    assert train[0].video == str(saved / "videos/clip.mp4")  # relative to the dataset folder by default
    assert [s.id for s in load_split(recipe, "val")] == ["v0"]  # 'val' finds the split named 'validation'
    with pytest.raises(DataError, match=r"no split 'test' or 'testing'; available: \['train', 'validation'\]"):
        load_split(recipe_with(test=str(saved), column_map={"query": "question"}), "test")
    with pytest.raises(DataError, match=r"missing required field 'question'"):
        load_split(recipe_with(train=f"{saved}@train"), "train")  # without data.column_map


def test_hub_style_name_resolves_offline_from_a_local_folder(tmp_path, monkeypatch):
    folder = tmp_path / "acme" / "clips"
    write_jsonl(folder / "train.jsonl", [row("h0", video="/abs/h0.mp4")])
    monkeypatch.chdir(tmp_path)
    samples = load_split(recipe_with(train="acme/clips@train", check_video_files=False), "train")
    assert [s.id for s in samples] == ["h0"]


def test_unknown_hub_name_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"nobody-xyz/nothing\[train\]: cannot load dataset: .*not a local path"):
        load_split(recipe_with(train="nobody-xyz/nothing@train"), "train")


# ---------------------------------------------------------------- video paths


def test_video_root_resolves_relative_videos_and_missing_ones_fail_at_load(tmp_path):
    write_jsonl(tmp_path / "ann" / "train.jsonl", [row("r0", video="clips/r0.mp4")])
    touch_videos(tmp_path / "media", ["clips/r0.mp4"])
    recipe = recipe_with(train="ann/train.jsonl", video_root="media")
    samples = load_split(recipe, "train", base_dir=tmp_path)
    assert samples[0].video == str(tmp_path / "media" / "clips" / "r0.mp4")
    # default rule: the data file's folder, where the clip is not: named at load, with the fix
    with pytest.raises(DataError, match=r"train.jsonl:1: video file not found: .*ann/clips/r0.mp4 \('clips/r0.mp4' "
                                        r"taken relative to the JSONL file's folder; set data.video_root"):
        load_split(recipe_with(train="ann/train.jsonl"), "train", base_dir=tmp_path)


def test_trainer_draws_a_weighted_mix_by_its_weights(tmp_path):
    from tiny_setup import make_tiny_setup, write_recipe

    from rlvid.app.compose import sft_trainer
    from rlvid.data.loaders import load_jsonl, write_jsonl

    setup = make_tiny_setup(tmp_path / "tiny")
    samples = load_jsonl(setup["data"] / "train.jsonl").samples[:6]
    a, b = write_jsonl(samples[:3], tmp_path / "a.jsonl"), write_jsonl(samples[3:], tmp_path / "b.jsonl")
    overrides = {"data": {"train": [{"path": str(a), "weight": 4}, str(b)]},
                 "trainer": {"algorithm": "sft", "max_steps": 1}, "sft": {"global_samples_per_step": 2}}
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", setup, tmp_path / "run", overrides))
    trainer = sft_trainer(recipe, tmp_path)
    drawn = [i for step in range(300) for i in trainer.batch_indices(step)]
    from_a = sum(i < 3 for i in drawn)
    assert 3.2 < from_a / (len(drawn) - from_a) < 4.8  # same file sizes: 4x as often
    assert trainer.batch_indices(11) == trainer.batch_indices(11)  # a resumed run sees the same batches


def test_run_fingerprint_stamps_every_source(tmp_path):
    from rlvid.trainers.run_folder import fingerprint

    a = write_jsonl(tmp_path / "a.jsonl", [row("a")])
    recipe = recipe_with(train=[{"path": str(a), "weight": 2}, str(tmp_path / "missing.jsonl")])
    stamps = fingerprint(recipe, "grpo", 1)["files.data.train"]
    assert stamps[0].startswith(f"{a.stat().st_size} bytes") and stamps[1] is None
