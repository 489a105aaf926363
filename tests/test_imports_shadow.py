"""A user's `rewards.py` / `data_selection.py` in the working folder cannot hide rlvid's own packages.

`python -m`, `torchrun -m` and `accelerate launch -m` put the working folder first on sys.path; the
finder that `import rlvid` installs (rlvid/own_imports.py) resolves `rewards` and `data_selection` to
the folders next to rlvid. The user's file named rewards.py still loads as a reward plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_setup import make_tiny_setup, write_recipe

ROOT = Path(__file__).resolve().parents[1]

USER_REWARDS = '''
if __name__ == "rewards":  # imported as the package name: the shadowing this test guards against
    raise ImportError("the user's rewards.py was imported as rlvid's 'rewards' package")


def my_reward(completions, **columns):
    return [0.5 for _ in completions]
'''
USER_SELECTION = 'raise ImportError("the user\'s data_selection.py was imported as rlvid\'s package")\n'


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")


def _user_folder(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "rewards.py").write_text(USER_REWARDS)
    (work / "data_selection.py").write_text(USER_SELECTION)
    return work


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    # `-c` puts the working folder first on sys.path, as `-m` does
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300)


def test_own_packages_win_over_user_files(tmp_path):
    work = _user_folder(tmp_path)
    proc = _python("import rlvid, rewards.accuracy, data_selection.online, rewards, data_selection\n"
                   "print(rewards.__file__); print(data_selection.__file__)", work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(ROOT / "rewards" / "__init__.py"), str(ROOT / "data_selection" / "__init__.py")]


def test_without_rlvid_first_the_user_file_shadows(tmp_path):
    """The control: the same folder breaks a plain `import rewards` (so the test above can fail)."""
    proc = _python("import rewards", _user_folder(tmp_path))
    assert proc.returncode != 0 and "imported as rlvid's 'rewards' package" in proc.stderr


def test_a_user_module_imported_before_rlvid_is_named(tmp_path):
    proc = _python(
        "import sys, types\nsys.modules['rewards'] = types.ModuleType('rewards')\nimport rlvid", tmp_path)
    assert proc.returncode != 0
    assert "a module named 'rewards'" in proc.stderr and "import rlvid first" in proc.stderr


LAUNCHERS = {
    "python": [sys.executable, "-m", "rlvid"],
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29641",
                 "-m", "rlvid"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlvid"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_train_one_step_from_a_folder_with_rewards_py(tmp_path, launcher):
    """Each documented launcher trains one step there, with the user's rewards.py as a reward plugin."""
    work = _user_folder(tmp_path)
    setup = make_tiny_setup(tmp_path / "tiny", n=12)
    write_recipe(work / "recipe.yaml", setup, work / "out", {
        "trainer": {"max_steps": 1},
        "rewards": {"functions": [{"name": "./rewards.py:my_reward"}, {"name": "temporal_iou"}]},
    })
    proc = subprocess.run([*LAUNCHERS[launcher], "train", "recipe.yaml"], cwd=work, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (work / "out" / "final" / "config.json").is_file()
    plugins = json.loads((work / "out" / "plugins.json").read_text())["plugins"]
    assert [p["path"] for p in plugins if p["kind"] == "reward"] == [str((work / "rewards.py").resolve())]


def test_module_form_of_an_own_name_points_at_the_file_form():
    from rlvid.plugins import PluginError, load_import_path

    with pytest.raises(PluginError, match=r"rlvid's own package: name your file as ./rewards.py:my_reward"):
        load_import_path("rewards:my_reward", kind="reward")
