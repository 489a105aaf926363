"""The CLI speaks to people: a user's mistake is `rlvid: error: ...` plus the fix and exit status 2, a traceback only
with --debug / RLVID_DEBUG=1; options and overrides in any order; every command's --help has a description and
the options' defaults; under torchrun only rank 0 prints."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvid.app.user_errors import fix_for, run_command
from rlvid.cli import build_parser, main, parse_args

ROOT = Path(__file__).resolve().parents[1]


def _bad_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(f"base: {ROOT / 'recipes' / 'base.yaml'}\ntrainer:\n  lr: fast\n")
    return path


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_recipe_error_is_two_lines_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RLVID_DEBUG", raising=False)
    code, err = _run(capsys, ["train", str(_bad_recipe(tmp_path))])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith(f"rlvid: error: {tmp_path / 'bad.yaml'}") and "trainer.lr" in lines[0]
    assert lines[1].startswith("  fix: ") and "--debug" in lines[1]


def test_bad_override_is_reported_the_same_way(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RLVID_DEBUG", raising=False)
    recipe = tmp_path / "ok.yaml"
    recipe.write_text(f"base: {ROOT / 'recipes' / 'base.yaml'}\n")
    code, err = _run(capsys, ["eval", str(recipe), "--split", "test", "trainer.lrr=1"])
    assert code == 2 and err.startswith("rlvid: error: command line override 'trainer.lrr=1'")
    assert "Did you mean 'trainer.lr'" in err and "Traceback" not in err


@pytest.mark.parametrize("how", ["flag", "flag-last", "env"])
def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch, how):
    monkeypatch.delenv("RLVID_DEBUG", raising=False)
    argv = ["train", str(_bad_recipe(tmp_path))]
    if how == "env":
        monkeypatch.setenv("RLVID_DEBUG", "1")
    argv = ["--debug", *argv] if how == "flag" else [*argv, "--debug"] if how == "flag-last" else argv
    code, err = _run(capsys, argv)
    assert code == 2
    assert "Traceback (most recent call last)" in err and "RecipeError" in err
    assert "rlvid: error: " in err


def test_other_ranks_print_nothing_but_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    code, err = _run(capsys, ["train", str(_bad_recipe(tmp_path))])
    assert (code, err) == (2, "")


def test_a_bug_keeps_its_traceback():
    def broken():
        raise RuntimeError("a bug in rlvid")

    with pytest.raises(RuntimeError, match="a bug in rlvid"):
        run_command(broken, debug=False)


def test_user_error_types_have_a_fix():
    from rewards.errors import NonFiniteRewardError, RewardError
    from rlvid.config.errors import RecipeError
    from rlvid.data.loaders import DataError
    from rlvid.plugins import PluginError

    for error in (RecipeError("r"), DataError("d"), RewardError("w", "m"), NonFiniteRewardError("n", "nan"),
                  PluginError("reward", "x", "file not found"), FileNotFoundError(2, "No such file", "x.jsonl")):
        assert fix_for(error), error
    for error in (RuntimeError("r"), ValueError("v"), KeyError("k")):
        assert fix_for(error) is None, error


def test_missing_path_is_a_user_error(capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert run_command(lambda: open("/no/such/file.jsonl"), debug=False) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlvid: error: [Errno 2] No such file or directory: '/no/such/file.jsonl'")


@pytest.mark.parametrize("argv", [
    ["eval", "R", "--split", "test", "data.test=t.jsonl", "trainer.seed=1"],
    ["eval", "R", "data.test=t.jsonl", "--split", "test", "trainer.seed=1"],
    ["eval", "R", "data.test=t.jsonl", "trainer.seed=1", "--split", "test"],
    ["eval", "--split", "test", "R", "data.test=t.jsonl", "trainer.seed=1"],
])
def test_options_and_overrides_in_any_order(argv):
    args = parse_args(build_parser(), argv)
    assert (args.recipe, args.split, args.overrides) == ("R", "test", ["data.test=t.jsonl", "trainer.seed=1"])


def test_unknown_option_is_still_refused(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(build_parser(), ["eval", "R", "--spilt", "test"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage: rlvid eval" in err and "unrecognized arguments: --spilt test" in err


def test_every_command_has_a_description_and_defaults():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) >= {"train", "sft", "eval", "plot", "select", "mdpo-pairs", "make-tiny-model"}
    for name, sub in commands.choices.items():
        text = " ".join(sub.format_help().split())
        assert sub.description and " ".join(sub.description.split()) in text, name
        for action in sub._actions:
            if action.help is argparse.SUPPRESS or action.dest == "help":
                continue
            assert action.help, f"rlvid {name} {action.dest}: no help text"
            if action.option_strings and isinstance(action.default, int | float | str) and action.default != "" \
                    and action.default is not False:
                assert f"(default: {action.default})" in text or "default" in action.help, (name, action.dest)


@pytest.mark.slow
def test_under_torchrun_only_rank_0_prints(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    env.pop("RLVID_DEBUG", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29643",
           "-m", "rlvid", "train", str(_bad_recipe(tmp_path))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("rlvid: error: ") == 1, proc.stderr[-3000:]
    assert proc.stderr.count("exitcode  : 2") + proc.stderr.count("exitcode: 2") >= 1, proc.stderr[-3000:]
