"""Recipes from anywhere: `base:` by packaged name or by path relative to the including file; every relative path
in a recipe file relative to that file's folder (command-line overrides: the working folder); output_dir relative
to the working folder; a missing local model folder reported as such, never as a Hub error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvid.cli import main
from rlvid.config import RecipeError, load_recipe, save_recipe
from rlvid.config.recipe_paths import PACKAGED_RECIPES, check_model_path

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A working folder that is neither the repository nor the recipe's folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_packaged_recipes_live_next_to_rlvid():
    assert PACKAGED_RECIPES == ROOT / "recipes" and (PACKAGED_RECIPES / "base.yaml").is_file()


@pytest.mark.parametrize("base", ["base.yaml", "base", "grpo_temporal_grounding"])
def test_base_by_packaged_name_from_any_folder(tmp_path, elsewhere, base):
    recipe = load_recipe(write(tmp_path / "mine" / "r.yaml", f"base: {base}\ntrainer:\n  lr: 3.0e-6\n"))
    assert recipe.trainer.lr == 3.0e-6
    if base == "grpo_temporal_grounding":
        assert recipe.model.path == "Qwen/Qwen2.5-VL-3B-Instruct"  # a Hub name stays one
        assert recipe.data.train == str(ROOT / "data" / "charades_sta" / "train.jsonl")  # relative to recipes/


def test_a_base_next_to_the_recipe_wins_over_the_packaged_one(tmp_path, elsewhere):
    write(tmp_path / "mine" / "base.yaml", "trainer:\n  seed: 7\n")
    assert load_recipe(write(tmp_path / "mine" / "r.yaml", "base: base.yaml\n")).trainer.seed == 7


def test_a_base_path_is_relative_to_the_including_file(tmp_path, elsewhere):
    write(tmp_path / "shared" / "common.yaml", "base: base.yaml\nmodel:\n  path: ./model\n")
    write(tmp_path / "shared" / "model" / "config.json", "{}")
    recipe = load_recipe(write(tmp_path / "proj" / "sub" / "r.yaml", "base: ../../shared/common.yaml\n"))
    assert recipe.model.path == str(tmp_path / "shared" / "model")  # the base's paths: the base's folder


def test_every_relative_path_is_relative_to_the_recipe_folder(tmp_path, elsewhere):
    folder = tmp_path / "proj"
    write(folder / "r.py", "def r(completions, **kw):\n    return [0.0 for _ in completions]\n")
    write(folder / "h.py", "def h(**kw):\n    return {}\n")
    write(folder / "loss.py", "def loss(logp, old_logp, advantages, mask, config):\n    return logp.sum()\n")
    recipe = load_recipe(write(folder / "r.yaml", """\
base: base.yaml
model:
  path: ./models/tiny
data:
  train: data/train.jsonl
  val: ../elsewhere/val.jsonl
  test: test.jsonl
mdpo:
  pairs: pairs
trainer:
  resume: checkpoints/step-000002
  output_dir: runs/mine
  policy_loss: ./loss.py:loss
rewards:
  functions:
    - name: ./r.py:r
    - name: format
hooks:
  - name: h.py:h
"""))
    assert recipe.model.path == str(folder / "models" / "tiny")
    assert (recipe.data.train, recipe.data.val, recipe.data.test) == (
        str(folder / "data" / "train.jsonl"), str(tmp_path / "elsewhere" / "val.jsonl"), str(folder / "test.jsonl"))
    assert recipe.mdpo.pairs == str(folder / "pairs")
    assert recipe.trainer.resume == str(folder / "checkpoints" / "step-000002")
    assert recipe.trainer.output_dir == "runs/mine"  # outputs: relative to the working folder, as written
    # plugin names stay as written (they name logs, metrics, the run's settings) and load from the recipe's folder
    assert (recipe.trainer.policy_loss, recipe.hooks[0].name) == ("./loss.py:loss", "h.py:h")
    assert [f.name for f in recipe.rewards.functions] == ["./r.py:r", "format"]
    from rewards import compose_rewards
    from rlvid.plugins import loaded_plugins

    compose_rewards(recipe.rewards.functions, base_dir=folder)  # what compose does with the recipe's folder
    assert str(folder / "r.py") in [p["path"] for p in loaded_plugins() if p["name"] == "./r.py:r"]


def test_a_plugin_named_in_a_base_elsewhere_is_found_next_to_that_base(tmp_path, elsewhere):
    write(tmp_path / "shared" / "r.py", "def r(completions, **kw):\n    return [0.0 for _ in completions]\n")
    write(tmp_path / "shared" / "common.yaml", "base: base.yaml\nrewards:\n  functions:\n    - name: ./r.py:r\n")
    recipe = load_recipe(write(tmp_path / "proj" / "r.yaml", "base: ../shared/common.yaml\n"))
    assert recipe.rewards.functions[0].name == f"{tmp_path / 'shared' / 'r.py'}:r"


def test_overrides_are_relative_to_the_working_folder(tmp_path, elsewhere):
    write(elsewhere / "r.py", "def r(completions, **kw):\n    return [0.0 for _ in completions]\n")
    path = write(tmp_path / "proj" / "r.yaml", "base: base.yaml\ndata:\n  train: train.jsonl\n")
    recipe = load_recipe(path, ["data.test=data/test.jsonl", "model.path=./m", "trainer.resume=auto",
                                "rewards.functions=[{name: ./r.py:r}]", "data.val=org/dataset"])
    assert recipe.data.train == str(tmp_path / "proj" / "train.jsonl")
    assert (recipe.data.test, recipe.model.path) == (str(elsewhere / "data" / "test.jsonl"), str(elsewhere / "m"))
    assert recipe.trainer.resume == "auto" and recipe.data.val == "org/dataset"
    assert recipe.rewards.functions[0].name == "./r.py:r"  # rlvid.plugins: the recipe's folder, then here


def test_the_saved_recipe_means_the_same_from_anywhere(tmp_path, elsewhere, monkeypatch):
    path = write(tmp_path / "proj" / "r.yaml", "base: base.yaml\nmodel:\n  path: ./m\ndata:\n  train: t.jsonl\n")
    recipe = load_recipe(path)
    saved = save_recipe(recipe, tmp_path / "run" / "recipe.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_recipe(saved) == recipe


def test_the_command_recipe_can_be_a_packaged_name(elsewhere):
    recipe = load_recipe("quickstart")
    assert recipe.model.path == str(ROOT / "runs" / "quickstart" / "model")
    assert recipe.trainer.output_dir == "runs/quickstart"


def test_an_unknown_recipe_name_lists_the_packaged_ones(elsewhere):
    with pytest.raises(RecipeError, match=r"quikstart: recipe file not found \(looked at .*quickstart"):
        load_recipe("quikstart")


@pytest.mark.parametrize("name", sorted(p.name for p in PACKAGED_RECIPES.glob("*.yaml")))
def test_every_packaged_recipe_loads_from_another_folder(elsewhere, name):
    recipe = load_recipe(PACKAGED_RECIPES / name)
    for value in (recipe.model.path, recipe.data.train, recipe.data.val, recipe.data.test):
        if value and "/" in value and not value.startswith("Qwen/"):
            assert Path(value).is_absolute() and Path(value).is_relative_to(ROOT), (name, value)


def test_a_missing_local_model_is_named_as_such(tmp_path, elsewhere):
    path = write(tmp_path / "proj" / "r.yaml", "base: base.yaml\nmodel:\n  path: ./m\n")
    recipe = load_recipe(path)
    with pytest.raises(RecipeError) as e:
        check_model_path(recipe.model.path)
    assert str(e.value) == f"model.path: ./m (in {path}) not found (resolved to {tmp_path / 'proj' / 'm'})"
    with pytest.raises(RecipeError, match=r"model folder ckpt/step-1/x not found \(resolved to .*cwd/ckpt/step-1/x\)"):
        check_model_path("ckpt/step-1/x")  # e.g. `rlvid eval --checkpoint`: relative to the working folder
    check_model_path("Qwen/Qwen2.5-VL-3B-Instruct")  # a Hub name: transformers decides


def test_the_cli_reports_a_missing_model_folder_not_a_hub_error(tmp_path, elsewhere, capsys, monkeypatch):
    from rlvid.models.loading import load_processor

    monkeypatch.delenv("RLVID_DEBUG", raising=False)
    path = write(tmp_path / "proj" / "r.yaml", "base: base.yaml\nmodel:\n  path: ./m\ndata:\n  val: v.jsonl\n")
    with pytest.raises(RecipeError, match="not found"):
        load_processor(load_recipe(path).model.path)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rlvid: error: model.path: ./m (in {path}) not found (resolved to ")
    assert "Repo id" not in err


def test_a_name_neither_local_nor_on_the_hub_is_one_error(elsewhere):
    from rlvid.models.loading import load_processor

    with pytest.raises(RecipeError, match=r"model 'final': no such local folder \(.*cwd/final\) and not loadable as "
                                          r"a Hub name"):
        load_processor("final")  # e.g. `rlvid eval --checkpoint final` from the wrong folder (tests run offline)


def test_data_sources_with_a_split_and_the_video_root_are_relative_to_the_recipe_folder(tmp_path, elsewhere):
    folder = tmp_path / "proj"
    (folder / "hf_folder").mkdir(parents=True)
    recipe = load_recipe(write(folder / "r.yaml", """\
base: base.yaml
data:
  train: [{path: hf_folder@validation, weight: 2}, org/dataset@train]
  val: hf_folder@validation
  video_root: videos
"""))
    assert recipe.data.train[0]["path"] == f"{folder / 'hf_folder'}@validation"
    assert recipe.data.train[1] == "org/dataset@train"  # a Hub name keeps its name and its split
    assert recipe.data.val == f"{folder / 'hf_folder'}@validation"
    assert recipe.data.video_root == str(folder / "videos")
