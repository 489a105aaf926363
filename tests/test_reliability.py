"""Fault injection: a run that is signalled, reused, resumed with other settings, fed a failing hook or a
hanging reward, or whose disk fills, loses nothing (docs/reliability.md).

One uninterrupted 4-step run (`whole`) is the reference; the faulty runs must end with its final
weights, every step exactly once in metrics.jsonl and no checkpoint of another run deleted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from tiny_setup import make_tiny_setup, write_recipe

from rewards import RewardError, compose_rewards
from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe
from rlvid.plot import read_metrics
from rlvid.timing import PhaseTimer
from rlvid.trainers.checkpoint import CheckpointSaveError, latest_checkpoint, save_checkpoint
from rlvid.trainers.run_folder import RunFolderError, reconcile_metrics
from rlvid.trainers.watchdog import PhaseWatchdog

FAULTS = '''
import os, signal
from pathlib import Path

def length(completions, **kw):
    mark = os.environ.get("RLVID_TEST_SIGNAL_MARK")
    if mark:  # count reward calls (one per step) and signal ourselves at the chosen one
        p = Path(mark)
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        if n == int(os.environ["RLVID_TEST_SIGNAL_AT"]):
            os.kill(os.getpid(), getattr(signal, os.environ.get("RLVID_TEST_SIGNAL", "SIGTERM")))
    return [len(c) / 10 for c in completions]

def broken_hook(step, **_):
    if step == 2:
        raise ValueError("hook bug")
    return {"ok": 1.0}
'''

STEPS = 4


def _overrides(**trainer):
    return {"trainer": dict({"max_steps": STEPS, "save_steps": 2, "save_total_limit": 0}, **trainer),
            "rewards": {"functions": [{"name": "./faults.py:length"}]},
            "hooks": [{"name": "./faults.py:broken_hook", "every_n_steps": 2}]}


def _fit(root, setup, out, name, **trainer):
    recipe = write_recipe(root / f"{name}.yaml", setup, out, _overrides(**trainer))
    trainer_ = grpo_trainer(load_recipe(recipe), root)
    trainer_.fit()
    return trainer_


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train_steps(run_dir):
    """Steps of the per-step rows (not the params row at 0, not the evaluation rows)."""
    return [r["step"] for r in _rows(run_dir) if "time/step" in r]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted reference run (its hook fails at step 2: logged, the run goes on)."""
    root = tmp_path_factory.mktemp("reliability")
    (root / "faults.py").write_text(FAULTS)
    setup = make_tiny_setup(root)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("rlvid.trainers").addHandler(handler)
    try:
        _fit(root, setup, root / "whole", "whole")
    finally:
        logging.getLogger("rlvid.trainers").removeHandler(handler)
    return {"root": root, "setup": setup, "dir": root / "whole", "logs": [r.getMessage() for r in records]}


def _same_final(a, b):
    wa, wb = load_file(str(a / "final" / "model.safetensors")), load_file(str(b / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.slow
def test_failing_hook_is_named_and_the_run_goes_on(whole):
    assert any("'./faults.py:broken_hook' failed at step 2" in m and "hook bug" in m for m in whole["logs"])
    evals = [r for r in _rows(whole["dir"]) if any(k.startswith("eval/") for k in r)]
    assert [(r["step"], r.get("eval/hook_errors"), r.get("eval/ok")) for r in evals] == [(2, 1.0, None),
                                                                                         (4, None, 1.0)]
    assert (whole["dir"] / "checkpoints" / "step-000002" / "complete").is_file()  # saved before evaluating
    assert (whole["dir"] / "final" / "complete").is_file()
    assert _train_steps(whole["dir"]) == [1, 2, 3, 4]


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_resume_matches(whole, tmp_path, monkeypatch, capsys):
    root, setup, out = whole["root"], whole["setup"], tmp_path / "run"
    monkeypatch.setenv("RLVID_TEST_SIGNAL_MARK", str(tmp_path / "calls"))
    monkeypatch.setenv("RLVID_TEST_SIGNAL_AT", "3")  # SIGTERM inside step 3's reward phase
    with pytest.raises(SystemExit) as stopped:
        _fit(root, setup, out, "signalled")
    assert stopped.value.code == 128 + signal.SIGTERM
    assert latest_checkpoint(out).name == "step-000003"  # not a save step: saved because of the signal
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after step 3/4" in err and "trainer.resume=auto" in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    with open(out / "metrics.jsonl", "a") as f:  # a disk-full write tore the last line
        f.write('{"step": 4, "loss": 0.12')

    monkeypatch.delenv("RLVID_TEST_SIGNAL_MARK")
    trainer = _fit(root, setup, out, "resumed", resume="auto")
    assert trainer.step == STEPS
    _same_final(whole["dir"], out)
    assert _train_steps(out) == [1, 2, 3, 4]
    assert Counter(r["step"] for r in _rows(out) if "eval/ok" in r or "eval/hook_errors" in r) == {2: 1, 4: 1}
    assert sorted(read_metrics(out)["grpo"]["loss"]) == [1, 2, 3, 4]


@pytest.mark.slow
def test_reused_folder_and_changed_settings_are_refused(whole, tmp_path):
    root, setup = whole["root"], whole["setup"]
    run = tmp_path / "copy"
    shutil.copytree(whole["dir"], run)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(RunFolderError, match="already holds a training run.*overwrite_output_dir=true"):
        _fit(root, setup, run, "again")
    with pytest.raises(RunFolderError, match=r"(?s)Changed:.*trainer\.seed: 42 -> 7"):
        recipe = write_recipe(root / "seed.yaml", setup, run, dict(_overrides(resume="auto", seed=7)))
        grpo_trainer(load_recipe(recipe), root).fit()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before  # nothing deleted

    _fit(root, setup, run, "overwrite", overwrite_output_dir=True, max_steps=2, save_total_limit=1)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002"]
    assert _train_steps(run) == [1, 2]


def test_hanging_reward_is_interrupted_and_follows_on_error():
    def hangs(completions, **kw):
        time.sleep(30)
        return [1.0] * len(completions)

    start = time.perf_counter()
    with pytest.raises(RewardError, match=r"hangs.*RewardTimeout.*timeout_s=0.3"):
        compose_rewards([hangs], timeout_s=0.3)(["a", "b"])
    out = compose_rewards([hangs], on_error="zero", timeout_s=0.3)(["a", "b"])
    assert out.total == [0.0, 0.0]
    assert time.perf_counter() - start < 5


def test_torn_and_later_metrics_rows_are_dropped_on_resume(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "p": 1}\n{"step": 1, "loss": 1}\n{"step": 2, "loss": 2}\n{"step": 3, "lo')
    assert read_metrics(tmp_path)["train"]["loss"] == {1: 1.0, 2: 2.0}
    assert f"{path}:4: bad row skipped" in caplog.text
    assert reconcile_metrics(path, 1) == 2
    assert path.read_text() == '{"step": 0, "p": 1}\n{"step": 1, "loss": 1}\n'


def _tiny_state():
    acc = Accelerator(cpu=True)
    model, opt = acc.prepare(torch.nn.Linear(3, 2), torch.optim.AdamW(torch.nn.Linear(3, 2).parameters()))
    return acc


def test_pruning_orders_by_step_and_keeps_the_new_checkpoint(tmp_path):
    acc = _tiny_state()
    for step in (9, 10, 100_0000):
        save_checkpoint(acc, tmp_path, step, {}, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000010", "step-1000000"]
    save_checkpoint(acc, tmp_path, 2, {}, keep=1)  # an older step just written is never the one deleted
    assert (tmp_path / "checkpoints" / "step-000002" / "complete").is_file()


def test_disk_full_save_names_the_path_and_keeps_the_previous(tmp_path, monkeypatch):
    acc = _tiny_state()
    good = save_checkpoint(acc, tmp_path, 1, {})

    def full(path, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(acc, "save_state", full)
    with pytest.raises(CheckpointSaveError, match=r"step-000002 in .*checkpoints failed: no space left on device"):
        save_checkpoint(acc, tmp_path, 2, {})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == good
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 1))
    with pytest.raises(CheckpointSaveError, match="not enough space to save a checkpoint in"):
        save_checkpoint(acc, tmp_path, 3, {})


def test_watchdog_warns_once_when_a_phase_runs_far_past_its_median(caplog):
    now = [0.0]
    timer = PhaseTimer(clock=lambda: now[0])
    dog = PhaseWatchdog(timer, factor=5.0, min_s=1.0)
    for step in range(3):
        dog.record(step + 1, {"gen": 1.0, "gen/decode": 0.5})
    with timer("gen"):
        now[0] = 4.0
        dog.check()
        assert not caplog.records
        now[0] = 6.0
        dog.check()
        dog.check()
    assert [r.getMessage() for r in caplog.records] == [
        "step 4: phase 'gen' has run 6 s, 6.0x its recent median of 1.0 s; a stalled reward, decode or process?"]


def test_second_signal_exits_at_once(tmp_path):
    script = ("import os, signal, time\nfrom rlvid.trainers.signals import StopRequest\n"
              "with StopRequest() as stop:\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n    assert stop.requested\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(30)\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))
    assert done.returncode == 128 + signal.SIGINT
    assert "second SIGINT, exiting now" in done.stderr
    assert time.perf_counter() - start < 20


def _data_with_bad_video(root, setup, out_dir):
    """A copy of the tiny data whose step-2 sample's video is cut to garbage; returns (setup, bad sample id)."""
    data = out_dir / "data"
    shutil.copytree(setup["data"], data)
    recipe = load_recipe(write_recipe(root / "probe.yaml", setup, out_dir / "probe", _overrides()))
    trainer = grpo_trainer(recipe, root)
    victim = trainer.train_samples[trainer.batch_indices(1)[0]]
    (data / "videos" / os.path.basename(victim.video)).write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    return dict(setup, data=data), victim.id


@pytest.mark.slow
def test_bad_video_at_step_2_is_named_or_skipped(whole, tmp_path):
    from rlvid.data.loaders import DataError

    root = whole["root"]
    setup, bad_id = _data_with_bad_video(root, whole["setup"], tmp_path)
    with pytest.raises(DataError, match=rf"step 2: sample '{bad_id}' \(.*train\.jsonl:\d+\): video could not be"):
        _fit(root, setup, tmp_path / "strict", "strict")
    assert (tmp_path / "strict" / "bad_steps" / "step-000002-rank0-data.jsonl").is_file()

    recipe = write_recipe(root / "skip.yaml", setup, tmp_path / "skip",
                          dict(_overrides(), data={"skip_bad_samples": True}))
    grpo_trainer(load_recipe(recipe), root).fit()
    skipped = {r["step"]: r["data/skipped_samples"] for r in _rows(tmp_path / "skip") if "time/step" in r}
    assert skipped == {1: 0.0, 2: 1.0, 3: 0.0, 4: 0.0}
    (found,) = (tmp_path / "skip" / "bad_steps").glob("step-000002-rank0-data.jsonl")
    assert json.loads(found.read_text())["sample"]["id"] == bad_id
    assert (tmp_path / "skip" / "final" / "complete").is_file()


def test_load_checks_video_files_and_declared_durations(tmp_path, whole):
    from rlvid.data.loaders import DataError, load_jsonl

    src = whole["setup"]["data"] / "train.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()[:2]]
    for r in rows:
        r["video"] = str(src.parent / r["video"])
    rows[1]["video"] = str(tmp_path / "gone.mp4")
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"{path}:2: video file not found: .*gone\.mp4"):
        load_jsonl(path, check_video_files=True)
    rows[1]["video"], rows[1]["duration"] = rows[0]["video"], 600.0
    rows[1]["intervals"] = [[1.0, 2.0]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"train\.jsonl:2: video .*declared duration 600 s, but the file lasts"):
        load_jsonl(path, check_videos=True)
    assert len(load_jsonl(path, check_videos=True, skip_bad_samples=True).samples) == 1


def test_select_outputs_are_written_atomically(tmp_path):
    from rlvid.data.loaders import write_jsonl
    from rlvid.data.sample import Sample

    path = tmp_path / "selected.jsonl"
    path.write_text("old\n")

    def samples():
        yield Sample(id="a", video="v.mp4", duration=4.0, task="mcq", question="q?", options=["x", "y"], answer="A")
        raise KeyboardInterrupt("killed mid-write")

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(samples(), path)
    assert path.read_text() == "old\n"  # not cut short
    assert [p.name for p in tmp_path.iterdir()] == ["selected.jsonl"]  # no temporary file left


def _wait_for_state(pid: int, state: str, timeout: float = 10.0) -> None:
    """Until /proc says process `pid` is in `state` (T stopped, Z dead), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == state:
                return
        except (OSError, IndexError):
            return  # already reaped
        time.sleep(0.05)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java")
@pytest.mark.parametrize("fault", ["SIGSTOP", "SIGKILL"])
def test_stopped_or_killed_meteor_jvm_is_replaced_once(fault):
    from rewards.captions import MeteorScorer

    scorer = MeteorScorer()
    scorer.read_timeout_s = 3.0
    try:
        expected = scorer.pairs(["a man walks a dog"], ["a man is walking his dog"])
        old = scorer._proc
        os.kill(old.pid, getattr(signal, fault))
        _wait_for_state(old.pid, "T" if fault == "SIGSTOP" else "Z")  # the signal is delivered asynchronously
        start = time.perf_counter()
        assert scorer.pairs(["a man walks a dog"], ["a man is walking his dog"]) == expected
        assert scorer._proc is not old and old.poll() is not None  # the stuck/dead one is gone, not reused
        assert time.perf_counter() - start < 60
    finally:
        scorer.close()


STALL_SCRIPT = '''
import logging, sys
from rlvid.config import load_recipe
from rlvid.app.compose import grpo_trainer
logging.basicConfig(level=logging.WARNING)
grpo_trainer(load_recipe(sys.argv[1]), sys.argv[2]).fit()
'''

STALLING_REWARD = '''
import os, time
def stall(completions, **kw):
    if os.environ.get("RANK") == "1":
        time.sleep(300)  # rank 1 stalls; rank 0 waits for it in the next collective
    return [len(c) / 10 for c in completions]
'''


@pytest.mark.slow
def test_stalled_rank_ends_the_job_naming_rank_and_phase(whole, tmp_path):
    setup = whole["setup"]
    (tmp_path / "run.py").write_text(STALL_SCRIPT)
    (tmp_path / "stall.py").write_text(STALLING_REWARD)
    recipe = write_recipe(tmp_path / "r.yaml", setup, tmp_path / "out", {
        "trainer": {"max_steps": 1, "global_prompts_per_step": 2, "collective_timeout_s": 10},
        "rewards": {"functions": [{"name": "./stall.py:stall"}], "timeout_s": 0}})
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(tmp_path / "run.py"), str(recipe), str(tmp_path)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode != 0
    assert time.perf_counter() - start < 250  # not the 300 s stall: the collective timed out
    assert "process 0: step 1 failed in phase 'reward'" in proc.stderr, proc.stderr[-3000:]


def test_nan_reward_in_an_evaluation_hook_follows_on_nan(tmp_path, caplog):
    from rewards import NonFiniteRewardError
    from rlvid.config.schema import Recipe
    from rlvid.trainers.hooks import BoundHook, HookError, HookRunner

    def nan_eval(**_):
        raise NonFiniteRewardError("iou", "nan for sample 0")

    recipe = Recipe()
    runner = HookRunner([], recipe)
    hook = BoundHook("nan_eval", nan_eval, 0, {})
    recipe.trainer.on_hook_error, recipe.trainer.on_nan = "raise", "skip"
    assert runner.run([hook], tmp_path, 4) == {"eval/hook_errors": 1.0}  # skipped like the training step
    assert "evaluation hook 'nan_eval' failed at step 4" in caplog.text
    recipe.trainer.on_nan = "raise"
    with pytest.raises(HookError, match="evaluation hook 'nan_eval' failed at step 4: NonFiniteRewardError"):
        runner.run([hook], tmp_path, 4)


@pytest.mark.slow
def test_sigkill_in_the_reward_phase_loses_only_the_unsaved_steps(whole, tmp_path):
    root, setup, out = whole["root"], whole["setup"], tmp_path / "run"
    recipe = write_recipe(tmp_path / "killed.yaml", setup, out, _overrides())
    (tmp_path / "faults.py").write_text(FAULTS)
    env = dict(os.environ, RLVID_TEST_SIGNAL_MARK=str(tmp_path / "calls"), RLVID_TEST_SIGNAL_AT="3",
               RLVID_TEST_SIGNAL="SIGKILL", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", STALL_SCRIPT, str(recipe), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert latest_checkpoint(out).name == "step-000002"
    trainer = _fit(root, setup, out, "after_kill", resume="auto")
    assert trainer.step == STEPS
    _same_final(whole["dir"], out)
    assert _train_steps(out) == [1, 2, 3, 4]


KILL_IN_SAVE = '''
import os, signal, sys
import rlvid.trainers.checkpoint as ck
from rlvid.app.compose import grpo_trainer
from rlvid.config import load_recipe

point, folder = sys.argv[3], sys.argv[4]
if point == "before_complete":  # model and optimizer written, the complete marker not yet
    fsync = ck._fsync_dir
    def _fsync_dir(path):
        if path.name == ".tmp-" + folder:
            os.kill(os.getpid(), signal.SIGKILL)
        fsync(path)
    ck._fsync_dir = _fsync_dir
else:  # "after_rename": the new checkpoint in place, the old ones not yet pruned
    prune = ck.prune_checkpoints
    def prune_checkpoints(root, keep, protect=None):
        if protect is not None and protect.name == folder:
            os.kill(os.getpid(), signal.SIGKILL)
        return prune(root, keep, protect=protect)
    ck.prune_checkpoints = prune_checkpoints
grpo_trainer(load_recipe(sys.argv[1]), sys.argv[2]).fit()
'''


@pytest.mark.slow
@pytest.mark.parametrize("point,resumes_at", [("before_complete", 2), ("after_rename", 4)])
def test_sigkill_inside_the_save_window_loses_nothing(whole, tmp_path, point, resumes_at):
    """SIGKILL while step 4's checkpoint is being written: before its complete marker (resume from step 2) or
    after the rename, before pruning (resume at step 4); either way the final weights are the uninterrupted
    run's and every step is in metrics.jsonl once."""
    root, setup, out = whole["root"], whole["setup"], tmp_path / "run"
    recipe = write_recipe(tmp_path / "killed.yaml", setup, out, _overrides())
    (tmp_path / "faults.py").write_text(FAULTS)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, str(recipe), str(tmp_path), point, "step-000004"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert latest_checkpoint(out).name == f"step-{resumes_at:06d}"
    assert not (out / "final").exists()
    trainer = _fit(root, setup, out, f"after_{point}", resume="auto")
    assert trainer.step == STEPS
    _same_final(whole["dir"], out)
    assert _train_steps(out) == [1, 2, 3, 4]
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")) == [
        "step-000002", "step-000004"]  # save_total_limit 0 keeps all; nothing of this run was deleted
