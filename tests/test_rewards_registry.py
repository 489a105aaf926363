"""Registry, plugins (file path, module path, entry point), combining, and every error case."""

from __future__ import annotations

import importlib
import logging
import math
import textwrap

import pytest

from rewards import (
    BoundReward,
    RewardError,
    RewardSpec,
    available_rewards,
    build_reward,
    compose_rewards,
    parse_reward_spec,
    register_reward,
    resolve_reward,
)
from rewards.format import format_reward
from rewards.registry import _REGISTERED

PLUGIN = textwrap.dedent(
    """
    def length_bonus(completions, scale=1.0, **kwargs):
        return [scale * len(c) for c in completions]

    def answer_only(completions, answer):
        return [1.0 if a is not None and a in c else 0.0 for c, a in zip(completions, answer, strict=True)]

    def const_two(completions, **kwargs):
        return [2] * len(completions)  # ints are accepted and converted

    NOT_A_FUNCTION = 3
    """
)


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "recipes" / "my_rewards.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return path


@pytest.fixture
def entry_point_plugin(tmp_path, monkeypatch):
    """An installed-looking distribution publishing `plug_len` in group rlvid.rewards."""
    site = tmp_path / "site"
    (site / "rlvid_test_plug").mkdir(parents=True)
    (site / "rlvid_test_plug" / "__init__.py").write_text(
        "def plug_len(completions, **kwargs):\n    return [float(len(c)) for c in completions]\n"
    )
    dist = site / "rlvid_test_plug-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rlvid-test-plug\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[rlvid.rewards]\nplug_len = rlvid_test_plug:plug_len\nplug_broken = rlvid_test_plug:missing\n"
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield
    importlib.invalidate_caches()


# ---------------------------------------------------------------- resolving


def test_builtin_and_module_path():
    assert resolve_reward("format") is format_reward
    assert resolve_reward("rewards.format:format_reward") is format_reward


def test_file_path_relative_to_recipe_dir_and_cwd(plugin_file, monkeypatch, tmp_path):
    fn = resolve_reward("./my_rewards.py:length_bonus", base_dir=plugin_file.parent)
    assert fn(["ab", "c"]) == [2.0, 1.0]
    monkeypatch.chdir(tmp_path)
    assert resolve_reward("recipes/my_rewards.py:length_bonus") is fn  # same file, loaded once
    assert resolve_reward(f"{plugin_file}:length_bonus")(["abc"]) == [3.0]


def test_entry_point(entry_point_plugin):
    assert resolve_reward("plug_len")(["abcd"]) == [4.0]
    assert available_rewards()["plug_len"].startswith("entry point")
    out = compose_rewards([{"name": "plug_len", "weight": 0.5}])(["ab"])
    assert out.total == [1.0]


def test_entry_point_that_fails_to_load(entry_point_plugin):
    with pytest.raises(RewardError, match="plug_broken.*loading entry point"):
        resolve_reward("plug_broken")


def test_register_reward_decorator():
    try:

        @register_reward("always_one")
        def always_one(completions, **kwargs):
            return [1.0] * len(completions)

        assert resolve_reward("always_one") is always_one
        with pytest.raises(RewardError, match="already registered"):
            register_reward("format")(always_one)
    finally:
        _REGISTERED.pop("always_one", None)


@pytest.mark.parametrize(
    "name, message",
    [
        ("no_such_reward", "unknown reward; builtins: .*'format'"),
        ("rewards.format:nope", "has no function 'nope'.*format_reward"),
        ("no_such_pkg.mod:fn", "cannot import module 'no_such_pkg.mod'"),
        ("./missing_file.py:fn", "file not found"),
        ("rewards.format:MODES", "not callable"),
        (":fn", "expected 'package.module:function'"),
        ("", "non-empty string"),
    ],
)
def test_resolve_errors_name_the_reward(name, message):
    with pytest.raises(RewardError, match=message) as info:
        resolve_reward(name)
    assert info.value.reward == name


def test_file_missing_function_and_import_error(plugin_file, tmp_path):
    with pytest.raises(RewardError, match="has no function 'nope'.*length_bonus"):
        resolve_reward(f"{plugin_file}:nope")
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_xyz\n")
    with pytest.raises(RewardError, match="importing .*bad.py failed: ModuleNotFoundError"):
        resolve_reward(f"{bad}:f")


# ---------------------------------------------------------------- specs and options


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"name": "format", "wieght": 1}, r"unknown key\(s\) \['wieght'\]"),
        ({"weight": 1}, "needs a 'name'"),
        ({"name": "format", "weight": float("nan")}, "'weight' must be a finite number"),
        ({"name": "format", "weight": "high"}, "'weight' must be a finite number"),
        ({"name": "format", "kwargs": [1]}, "'kwargs' must be a mapping"),
        ({"name": "format", "kwargs": {"mdoe": "strict"}}, r"unknown option\(s\) \['mdoe'\]; allowed: .*'mode'"),
        ({"name": "format", "kwargs": {"mode": "loose"}}, "option 'mode' is 'loose'"),
        ({"name": "temporal_iou", "kwargs": {"variant": "giou"}}, "option 'variant'"),
        ({"name": "overlong"}, r"missing required option\(s\) \['max_length'\]"),
        ({"name": "overlong", "kwargs": {"max_length": -3}}, "'max_length' must be a positive integer"),
        ({"name": "dense_caption", "kwargs": {"caption_scorer": "bleu"}}, "option 'caption_scorer'"),
        (42, "must be a mapping"),
    ],
)
def test_spec_errors(raw, message):
    with pytest.raises(RewardError, match=message):
        build_reward(raw)


def test_spec_from_omegaconf_and_string():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "temporal_iou", "weight": 2, "kwargs": {"variant": "time_r1"}})
    spec = parse_reward_spec(cfg)
    assert spec == RewardSpec("temporal_iou", 2.0, {"variant": "time_r1"})
    assert parse_reward_spec("format") == RewardSpec("format")


def test_user_function_options_are_checked_when_it_has_no_kwargs(plugin_file):
    with pytest.raises(RewardError, match=r"unknown option\(s\) \['scale'\]"):
        build_reward({"name": f"{plugin_file}:answer_only", "kwargs": {"scale": 2}})
    # with **kwargs, options cannot be checked and are passed on
    reward = build_reward({"name": f"{plugin_file}:length_bonus", "kwargs": {"scale": 2}})
    assert reward(["abc"]) == [6.0]


# ---------------------------------------------------------------- combining


def test_weights_none_and_subscores(plugin_file):
    def subs(completions, **kwargs):
        return {"a": [1.0, None, 0.5], "b": [0.5, None, None]}

    def sometimes(completions, **kwargs):
        return [None, None, 1.0]

    rs = compose_rewards([
        {"name": "format", "weight": 0.5},
        {"name": f"{plugin_file}:const_two", "weight": 0.0, "label": "logged_only"},
    ])
    rs.rewards.append(build_reward_from(subs, "subs", 2.0))
    rs.rewards.append(build_reward_from(sometimes, "sometimes", 1.0))
    comps = ["<think>x</think><answer>A</answer>", "nope", "<think>y</think><answer>B</answer>"]
    out = rs(comps)
    # 0.5*format + 0*2 + 2*(a+b) + 1*sometimes ; None adds nothing
    assert out.total == pytest.approx([0.5 + 2 * 1.5, 0.0, 0.5 + 2 * 0.5 + 1.0])
    assert out.scores["subs/a"] == [1.0, None, 0.5]
    assert out.scores["subs"] == [1.5, None, 0.5]
    assert out.scores["logged_only"] == [2.0, 2.0, 2.0]
    assert out.unscored == 0
    m = out.metrics()
    assert m["rewards/format"] == pytest.approx(2 / 3)
    assert m["rewards/subs/b"] == 0.5
    assert m["rewards/sometimes"] == 1.0
    assert m["rewards/total"] == pytest.approx(sum(out.total) / 3)


def build_reward_from(fn, label, weight):
    return BoundReward(label=label, name=label, weight=weight, fn=fn, accepts=None)


def test_columns_are_passed_as_keywords_trl_style(plugin_file):
    seen = {}

    def trl_style(prompts, completions, answer, **kwargs):
        seen.update(kwargs)
        return [1.0 if a in c else 0.0 for c, a in zip(completions, answer, strict=True)]

    rs = compose_rewards([f"{plugin_file}:answer_only"])
    rs.rewards.append(build_reward_from(trl_style, "trl", 1.0))
    out = rs(["the answer is B", "C"], prompts=["p", "p"], answer=["B", "B"], task=["mcq", "mcq"])
    assert out.scores["answer_only"] == [1.0, 0.0]  # took only `answer`, not `prompts` or `task`
    assert out.scores["trl"] == [1.0, 0.0]
    assert seen == {"task": ["mcq", "mcq"]}


def test_unscored_and_duplicate_labels():
    rs = compose_rewards(["temporal_iou", "temporal_iou"])
    assert rs.labels == ["temporal_iou", "temporal_iou_2"]
    out = rs(["<answer>B</answer>"], task=["mcq"], intervals=[None])
    assert out.total == [0.0] and out.unscored == 1
    with pytest.raises(ValueError, match="distinct 'label'"):
        compose_rewards([{"name": "format", "label": "x"}, {"name": "accuracy", "label": "x"}])


# ---------------------------------------------------------------- reward errors


def _bad(kind):
    def fn(completions, **kwargs):
        if kind == "short":
            return [1.0] * (len(completions) - 1)
        if kind == "type":
            return "1.0"
        if kind == "item":
            return ["1.0"] * len(completions)
        if kind == "nan":
            return [math.nan if "bad" in c else 1.0 for c in completions]
        if kind == "raise":
            if any("bad" in c for c in completions):
                raise KeyError("boom")
            return [1.0] * len(completions)
        raise AssertionError(kind)

    return fn


@pytest.mark.parametrize(
    "kind, message",
    [("short", "returned 1 scores for 2 completions"), ("type", "returned str"), ("item", "returned a str at index 0")],
)
@pytest.mark.parametrize("on_error", ["raise", "zero"])
def test_contract_violations_always_raise(kind, message, on_error):
    rs = compose_rewards(["format"], on_error=on_error)
    rs.rewards[0] = build_reward_from(_bad(kind), "mine", 1.0)
    with pytest.raises(RewardError, match=f"reward 'mine': {message}"):
        rs(["a", "b"])


@pytest.mark.parametrize("kind, message", [("nan", "score nan at index 1 is not finite"), ("raise", "raised KeyError")])
def test_failures_raise_by_default(kind, message):
    rs = compose_rewards(["format"])
    rs.rewards[0] = build_reward_from(_bad(kind), "mine", 1.0)
    with pytest.raises(RewardError, match=f"reward 'mine': {message}"):
        rs(["good", "bad one", "good"])


@pytest.mark.parametrize("kind", ["nan", "raise"])
def test_failures_zeroed_counted_and_logged(kind, caplog):
    rs = compose_rewards(["format"], on_error="zero")
    rs.rewards[0] = build_reward_from(_bad(kind), "mine", 2.0)
    long_bad = "bad " + "x" * 1000
    with caplog.at_level(logging.WARNING, logger="rlvid.rewards"):
        out = rs(["good", long_bad, "good"])
    assert out.scores["mine"] == [1.0, 0.0, 1.0]
    assert out.total == [2.0, 0.0, 2.0]
    assert out.errors == {"mine": 1}
    assert out.metrics()["rewards_errors/mine"] == 1.0
    (record,) = caplog.records
    assert "'mine' failed" in record.getMessage()
    assert "bad xxx" in record.getMessage() and "x" * 300 not in record.getMessage()  # truncated


def test_on_error_value_is_checked():
    with pytest.raises(ValueError, match="rewards.on_error"):
        compose_rewards(["format"], on_error="ignore")


def test_spec_from_recipe_schema_dataclass():
    from rlvid.config.schema import RewardsConfig
    from rlvid.config.schema import RewardSpec as SchemaSpec

    cfg = RewardsConfig(functions=[SchemaSpec(name="format", weight=0.5), SchemaSpec(name="accuracy")], on_error="zero")
    rs = compose_rewards(cfg.functions, on_error=cfg.on_error)
    assert rs.labels == ["format", "accuracy"] and rs.on_error == "zero"
    assert rs(["<think>t</think><answer>B</answer>"], task=["mcq"], answer=["B"], options=[["x", "y"]]).total == [1.5]


def test_readme_example_runs(tmp_path):
    """The plugin example in rewards/README.md loads by file path and scores as documented."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "rewards" / "README.md").read_text()
    code = re.search(r"```python\n(# my_rewards\.py\n.*?)```", readme, re.S).group(1)
    (tmp_path / "my_rewards.py").write_text(code)
    rs = compose_rewards(
        [{"name": "format", "weight": 0.5}, {"name": "./my_rewards.py:short_answer", "weight": 0.2,
                                             "kwargs": {"max_words": 3}}],
        base_dir=tmp_path,
    )
    out = rs(["<think>t</think><answer>a red car</answer>", "<think>t</think><answer>a very red fast car</answer>"])
    assert out.scores["short_answer"] == [1.0, 0.0]
    assert out.total == pytest.approx([0.7, 0.5])
