"""Recipe-named code is recorded (path + sha256) and model code from the Hub runs only when the recipe says so."""

from __future__ import annotations

import hashlib
import json
import logging

from rlvid import plugins
from rlvid.models import loading


def test_a_file_plugin_is_recorded_with_its_sha256(tmp_path):
    source = "def fancy(completions, **kw):\n    return [1.0 for _ in completions]\n"
    (tmp_path / "my_reward_sec.py").write_text(source)
    fn = plugins.load_import_path("./my_reward_sec.py:fancy", tmp_path, "reward")
    assert fn(["a"]) == [1.0]
    records = [r for r in plugins.loaded_plugins() if r["name"] == "./my_reward_sec.py:fancy"]
    assert len(records) == 1
    assert records[0]["path"] == str((tmp_path / "my_reward_sec.py").resolve())
    assert records[0]["sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert records[0]["kind"] == "reward" and records[0]["source"] == "file"


def test_a_module_plugin_is_recorded_and_the_record_is_written(tmp_path, caplog):
    plugins.load_import_path("json:dumps", None, "hook")
    with caplog.at_level(logging.INFO, logger="rlvid.plugins"):
        path = plugins.write_plugin_record(tmp_path / "run" / "plugins.json")
    written = json.loads(path.read_text())["plugins"]
    rec = next(r for r in written if r["name"] == "json:dumps")
    assert rec["module"] == "json" and rec["path"] == str(plugins.Path(json.__file__).resolve())
    assert rec["sha256"] == plugins.file_sha256(json.__file__)
    assert "json:dumps" in caplog.text  # printed at the start of a run too


def test_trust_remote_code_is_off_by_default_and_passed_through(monkeypatch, caplog):
    import transformers

    seen = {}

    def fake_from_pretrained(path, **kwargs):
        seen.update(kwargs)
        return "processor"

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", staticmethod(fake_from_pretrained))
    with caplog.at_level(logging.WARNING, logger="rlvid.models"):
        loading.load_processor("some/model")
    assert seen["trust_remote_code"] is False
    assert "trust_remote_code" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="rlvid.models"):
        loading.load_processor("some/model", trust_remote_code=True)
    assert seen["trust_remote_code"] is True
    assert "trust_remote_code is on" in caplog.text


def test_the_recipe_default_is_off():
    from rlvid.config.schema import ModelConfig

    assert ModelConfig().trust_remote_code is False
