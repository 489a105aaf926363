"""Recipe loading: schema errors name key, file and allowed values; composition; overrides; round trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlvid.config import HookSpec, Recipe, RecipeError, RewardSpec, load_recipe, recipe_to_dict, save_recipe

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(path: Path, overrides: list[str] = ()) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def leaf_keys(data, prefix: str = "") -> set[str]:
    if isinstance(data, dict) and data:
        return set().union(*(leaf_keys(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in data.items()))
    return {prefix}


# ---------------------------------------------------------------- defaults


def test_base_recipe_writes_every_default(tmp_path):
    base = REPO / "recipes" / "base.yaml"
    assert load_recipe(base) == Recipe()
    written = OmegaConf.to_container(OmegaConf.load(base))
    assert leaf_keys(written) == leaf_keys(recipe_to_dict(Recipe()))


def test_empty_recipe_is_all_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", ""))
    assert recipe == Recipe()
    assert recipe.trainer.lr == 1e-6 and recipe.data.video.total_pixels == 1605632
    assert recipe.model.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


# ---------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_names_file_and_allowed_keys(tmp_path):
    path = write(tmp_path / "r.yaml", "trainr:\n  lr: 1.0e-5\n")
    message = error_of(path)
    assert message.startswith(f"{path}: unknown key 'trainr'.")
    assert "Did you mean 'trainer'?" in message
    sections = "model, data, rollout, trainer, sft, mdpo, rewards, selection, hooks, logging"
    assert f"Allowed keys at the top level: {sections}" in message


def test_unknown_nested_key_names_dotted_key_and_section_keys(tmp_path):
    path = write(tmp_path / "r.yaml", "trainer:\n  lerning_rate: 1.0e-5\n")
    message = error_of(path)
    assert f"{path}: unknown key 'trainer.lerning_rate'. Did you mean 'trainer.lr'?" in message
    allowed = re.search(r"Allowed keys in 'trainer': (.*)$", message).group(1).split(", ")
    assert allowed[:3] == ["algorithm", "output_dir", "seed"] and "lr" in allowed and "kl_estimator" in allowed

    message = error_of(write(tmp_path / "s.yaml", "trainer:\n  num_iteration: 2\n"))
    assert "Did you mean 'trainer.num_iterations'?" in message


def test_unknown_key_deep_inside_a_list_keeps_its_full_path(tmp_path):
    path = write(tmp_path / "r.yaml", "rewards:\n  functions:\n    - name: a\n    - name: b\n      wieght: 2\n")
    message = error_of(path)
    assert f"{path}: unknown key 'rewards.functions[1].wieght'. Did you mean 'rewards.functions[1].weight'?" in message
    assert "Allowed keys in 'rewards.functions[1]': name, weight, kwargs" in message


def test_section_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path / "r.yaml", "trainer: 5\n")
    assert error_of(path) == f"{path}: 'trainer' must be a mapping of TrainerConfig keys, got 5 (int)"


# ---------------------------------------------------------------- types and allowed values


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("trainer:\n  lr: abc\n", "'trainer.lr' expects float, got 'abc' (str)"),
        ("trainer:\n  seed: 1.5\n", "'trainer.seed' expects int, got 1.5 (float)"),
        ("trainer:\n  progress_bar: 1\n", "'trainer.progress_bar' expects bool (true or false), got 1 (int)"),
        ("trainer:\n  epsilon_high: [1]\n", "'trainer.epsilon_high' expects float or null, got [1] (list)"),
        ("trainer:\n  lr: null\n", "'trainer.lr' expects float, got null"),
        ("data:\n  tasks: mcq\n", "'data.tasks' expects list[str] or null, got 'mcq' (str)"),
        ("rewards:\n  functions:\n    - {name: a, weight: heavy}\n", "'rewards.functions[0].weight' expects float"),
    ],
)
def test_mistyped_value_names_key_expected_type_and_value(tmp_path, yaml_text, expected):
    path = write(tmp_path / "r.yaml", yaml_text)
    assert error_of(path).startswith(f"{path}: {expected}")


def test_bad_choice_lists_the_allowed_values(tmp_path):
    path = write(tmp_path / "r.yaml", "trainer:\n  loss_agg: dapoo\n")
    assert error_of(path) == (
        f"{path}: 'trainer.loss_agg' must be one of ['seq_mean_token_mean', 'seq_mean_token_sum_norm', 'token_mean', "
        "'dapo', 'dr_grpo', 'grpo'] (or a plugin: pkg.mod:fn, ./file.py:fn), got 'dapoo'. Did you mean 'dapo'?"
    )
    path = write(tmp_path / "s.yaml", "rollout:\n  engine: sglang\n")
    assert "'rollout.engine' must be one of ['hf', 'vllm', 'vllm-server'], got 'sglang'" in error_of(path)


def test_numbers_are_converted_to_the_field_type(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", "trainer:\n  lr: 1e-5\n  epsilon: 1\n"))
    assert recipe.trainer.lr == 1e-5 and isinstance(recipe.trainer.epsilon, float)


def test_list_item_needs_its_required_fields(tmp_path):
    path = write(tmp_path / "r.yaml", "rewards:\n  functions:\n    - weight: 2.0\n")
    assert error_of(path) == f"{path}: 'rewards.functions[0].name' is required"


def test_range_checks_name_the_key(tmp_path):
    path = write(tmp_path / "r.yaml", "rollout:\n  num_generations: 1\n")
    assert "'rollout.num_generations' must be >= 2 for grpo" in error_of(path)
    path = write(tmp_path / "s.yaml", "mdpo:\n  loss: ipo\n  label_smoothing: 0.1\n")
    assert "'mdpo.label_smoothing' applies to mdpo.loss=sigmoid only" in error_of(path)
    path = write(tmp_path / "m.yaml", "mdpo:\n  pairs_per_step: 0\n")
    assert "'mdpo.pairs_per_step' must be >= 1" in error_of(path)
    ok = load_recipe(write(tmp_path / "t.yaml", "trainer: {algorithm: mdpo}\nrollout: {num_generations: 1}\n"))
    assert ok.rollout.num_generations == 1


def test_free_form_kwargs_accept_any_keys(tmp_path):
    path = write(
        tmp_path / "r.yaml",
        "rewards:\n  functions:\n    - name: temporal_iou\n      kwargs: {sigma: 0.5, nested: {any: [1, two]}}\n"
        "selection:\n  offline: {strategy: variance, kwargs: {runs: 8, keep: 0.5}}\n"
        "hooks:\n  - {name: eval_val, every_n_steps: 10, kwargs: {split: val}}\n",
    )
    recipe = load_recipe(path, ["selection.offline.kwargs.new_key=5", "rewards.functions.0.kwargs.mode=soft"])
    kwargs = {"sigma": 0.5, "nested": {"any": [1, "two"]}, "mode": "soft"}
    assert recipe.rewards.functions == [RewardSpec(name="temporal_iou", weight=1.0, kwargs=kwargs)]
    assert recipe.selection.offline.kwargs == {"runs": 8, "keep": 0.5, "new_key": 5}
    assert recipe.hooks == [HookSpec(name="eval_val", every_n_steps=10, kwargs={"split": "val"})]


def test_interpolation_resolves_to_the_referenced_value(tmp_path):
    text = "trainer: {output_dir: runs/x}\nlogging: {run_name: '${trainer.output_dir}'}\n"
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    assert recipe.logging.run_name == "runs/x"


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path / "r.yaml", "trainer: [unclosed\n")
    assert error_of(path).startswith(f"{path}: not valid YAML")


# ---------------------------------------------------------------- composition


def test_child_overrides_its_base_and_inherits_the_rest(tmp_path):
    write(tmp_path / "base.yaml", "trainer: {lr: 1.0e-5, seed: 7}\nrewards:\n  functions: [{name: accuracy}]\n")
    child = write(tmp_path / "exp" / "child.yaml", "base: ../base.yaml\ntrainer: {lr: 2.0e-5}\n")
    recipe = load_recipe(child)
    assert recipe.trainer.lr == 2e-5  # child wins
    assert recipe.trainer.seed == 7  # inherited
    assert recipe.rewards.functions == [RewardSpec(name="accuracy")]
    assert recipe.trainer.epsilon == 0.2  # schema default


def test_bases_merge_in_order_and_recursively(tmp_path):
    write(tmp_path / "root.yaml", "trainer: {seed: 1, epochs: 3}\n")
    write(tmp_path / "a.yaml", "base: root.yaml\ntrainer: {seed: 2, lr: 3.0e-6}\n")
    write(tmp_path / "b.yaml", "base: root.yaml\ntrainer: {seed: 3}\n")  # root reached twice: fine
    recipe = load_recipe(write(tmp_path / "c.yaml", "base: [a.yaml, b.yaml]\n"))
    assert (recipe.trainer.seed, recipe.trainer.lr, recipe.trainer.epochs) == (3, 3e-6, 3)


def test_child_list_replaces_the_base_list(tmp_path):
    write(tmp_path / "base.yaml", "rewards:\n  functions: [{name: a}, {name: b}]\n")
    recipe = load_recipe(write(tmp_path / "c.yaml", "base: base.yaml\nrewards:\n  functions: [{name: c}]\n"))
    assert [f.name for f in recipe.rewards.functions] == ["c"]


def test_composition_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    assert "recipe composition cycle" in error_of(tmp_path / "a.yaml")


def test_error_in_a_base_names_the_base_file(tmp_path):
    base = write(tmp_path / "base.yaml", "model:\n  dtyp: bf16\n")
    message = error_of(write(tmp_path / "c.yaml", "base: base.yaml\n"))
    assert message.startswith(f"{base}: unknown key 'model.dtyp'. Did you mean 'model.dtype'?")
    assert "missing.yaml: recipe file not found" in error_of(write(tmp_path / "d.yaml", "base: missing.yaml\n"))


# ---------------------------------------------------------------- command-line overrides


def test_dotlist_overrides_apply_with_types(tmp_path):
    path = write(tmp_path / "r.yaml", "trainer: {lr: 1.0e-5}\nrewards:\n  functions: [{name: iou, weight: 1.0}]\n")
    recipe = load_recipe(
        path,
        [
            "trainer.lr=2e-6",
            "rollout.engine=vllm",
            "data.tasks=[mcq,temporal_grounding]",
            "trainer.epsilon_high=0.28",
            "rewards.functions[0].weight=3",
            "data.val=null",
        ],
    )
    assert recipe.trainer.lr == 2e-6
    assert recipe.rollout.engine == "vllm"
    assert recipe.data.tasks == ["mcq", "temporal_grounding"]
    assert recipe.trainer.epsilon_high == 0.28
    assert recipe.rewards.functions[0].weight == 3.0
    assert recipe.data.val is None


def test_override_can_replace_a_list_of_specs(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", ""), ["rewards.functions=[{name: a, weight: 0.5}, {name: b}]"])
    assert recipe.rewards.functions == [RewardSpec(name="a", weight=0.5), RewardSpec(name="b")]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.lr=abc", "command line override 'trainer.lr=abc': 'trainer.lr' expects float, got 'abc' (str)"),
        ("trainer.lrr=1", "override 'trainer.lrr=1': unknown key 'trainer.lrr'. Did you mean 'trainer.lr'?"),
        ("trainr.lr=1", "command line override 'trainr.lr=1': unknown key 'trainr'. Did you mean 'trainer'?"),
        ("trainer.loss_agg=mean", "'trainer.loss_agg' must be one of ['seq_mean_token_mean', "),
        ("trainer.lr", "command line override 'trainer.lr': expected key=value"),
        ("trainer.lr.x=1", "'trainer.lr' is a float, it has no key 'x'"),
        ("rewards.functions.x=1", "'rewards.functions' is a list; index it with a number"),
        ("rewards.functions.0.weight=2", "command line override 'rewards.functions.0.weight=2'"),  # no such item
    ],
)
def test_bad_override_says_it_came_from_the_command_line(tmp_path, override, expected):
    message = error_of(write(tmp_path / "r.yaml", ""), [override])
    assert expected in message


def test_later_override_wins(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", ""), ["trainer.seed=1", "trainer.seed=2"])
    assert recipe.trainer.seed == 2


# ---------------------------------------------------------------- round trip


def test_save_then_load_reproduces_the_recipe_exactly(tmp_path):
    child = write(
        tmp_path / "c.yaml",
        "base: recipes_base.yaml\ntrainer: {loss_agg: dapo, epsilon_high: 0.28}\n"
        "rewards:\n  functions:\n    - {name: temporal_iou, weight: 0.5, kwargs: {mode: soft, thr: '1e-3'}}\n"
        "hooks: [{name: eval_val, every_n_steps: 5}]\n",
    )
    write(tmp_path / "recipes_base.yaml", "model: {path: '123', lora: {enabled: true}}\nlogging: {run_name: 'null'}\n")
    recipe = load_recipe(child, ["trainer.lr=3e-6", "data.video.fps=1.5"])
    saved = save_recipe(recipe, tmp_path / "run" / "recipe.yaml")
    again = load_recipe(saved)
    assert again == recipe
    assert again.model.path == "123" and again.logging.run_name == "null"  # strings that look like other types
    assert again.rewards.functions[0].kwargs == {"mode": "soft", "thr": "1e-3"}
    text = saved.read_text()
    assert "rollout_is_cap: 2.0" in text and "base:" not in text  # defaults written, composition flattened
