"""A tiny GRPO run with an evaluation, a bad_steps dump and `rlvid eval`, fed secrets and hostile sample ids:
no secret value appears in any file the run wrote, and nothing is written outside output_dir."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_setup import make_tiny_setup, write_recipe

TOKENS = {"HF_TOKEN": "hf_PLANTEDsecret0123456789", "WANDB_API_KEY": "wandbPLANTED0123456789abcdef",
          "MY_JUDGE_KEY": "judgePLANTED-0123456789"}  # the last one only through the recipe's logging.secret_env


def _hostile_copy(data: Path, out: Path) -> Path:
    """The synthetic splits with ids that climb out of any folder and secrets in the free-form fields."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        lines = []
        for i, line in enumerate((data / f"{split}.jsonl").read_text().splitlines()):
            rec = json.loads(line)
            rec["id"] = f"../../../escape-{split}-{i}" if i % 2 else f"/tmp/abs-{split}-{i}"
            rec["meta"] = {"note": f"token {TOKENS['HF_TOKEN']} and {TOKENS['MY_JUDGE_KEY']}"}
            if not Path(rec["video"]).is_absolute():
                rec["video"] = str((data / rec["video"]).resolve())
            lines.append(json.dumps(rec))
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_run_writes_no_secret_and_nothing_outside_output_dir(tmp_path, monkeypatch):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    setup = make_tiny_setup(tmp_path / "setup", n=12)
    work = tmp_path / "work" / "a" / "b"  # hostile ids climb three levels from here
    data = _hostile_copy(setup["data"], work / "data")
    out = work / "run"
    recipe_path = write_recipe(work / "recipe.yaml", {"model": setup["model"], "data": data}, out, overrides={
        "trainer": {"max_steps": 2, "eval_steps": 2, "max_eval_samples": 2},
        "rewards": {"functions": [{"name": "format", "weight": 0.5, "kwargs": {"think": "optional"},
                                   "label": "fmt_${oc.env:MY_JUDGE_KEY}"},
                                  {"name": "temporal_iou", "weight": 0.5}]},
        "hooks": [{"name": "eval_grounding"}, {"name": "save_samples", "kwargs": {"num_samples": 2}}],
        "logging": {"wandb": "offline", "run_name": "run-${oc.env:WANDB_API_KEY}", "secret_env": ["MY_JUDGE_KEY"],
                    "project": "p-${oc.env:HF_TOKEN}"},
    })
    before = _tree(tmp_path)

    from rlvid.app.compose import grpo_trainer
    from rlvid.app.eval import run_eval
    from rlvid.config import load_recipe

    recipe = load_recipe(recipe_path)
    trainer = grpo_trainer(recipe, recipe_path.parent)
    trainer.fit()
    trainer.save_bad_samples(0, trainer.val_samples[:2], f"planted {TOKENS['HF_TOKEN']}")
    run_eval(str(recipe_path), checkpoint=str(out / "final"), split="val", out=str(out / "eval_val"), batch_size=2)

    written = _tree(tmp_path) - before
    outside = sorted(str(p) for p in written if out not in p.parents and p != out)
    assert outside == []
    assert not list(tmp_path.rglob("escape-*")) and not list(Path("/tmp").glob("abs-*-*"))

    files = [p for p in out.rglob("*") if p.is_file()]
    for expected in ("recipe.yaml", "metrics.jsonl", "plugins.json", "eval_val/predictions.jsonl"):
        assert (out / expected).is_file(), expected
    assert list((out / "bad_steps").glob("*.jsonl")) and list((out / "samples").glob("*.jsonl"))
    assert list((out / "wandb").rglob("*")), "wandb offline wrote its files into the run folder"
    leaks = [(str(p.relative_to(out)), name) for p in files for name, value in TOKENS.items()
             if value.encode() in p.read_bytes()]
    assert leaks == []
    # the redaction is visible where the values were (so the test is not passing on absent data)
    assert "<redacted:MY_JUDGE_KEY>" in (out / "metrics.jsonl").read_text()
    assert "<redacted:HF_TOKEN>" in (out / "recipe.yaml").read_text()
    assert "<redacted:HF_TOKEN>" in next((out / "bad_steps").glob("*.jsonl")).read_text()
