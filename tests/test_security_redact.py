"""rlvid.redact: secret values from the environment are replaced in records, recipes and log lines."""

from __future__ import annotations

import io
import logging

from rlvid import redact


def test_known_and_listed_variables_are_redacted_everywhere_in_a_record(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-PLANTED-abcdef123456")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "svcPLANTED99887766")
    record = {"a": "key=sk-PLANTED-abcdef123456;", "sk-PLANTED-abcdef123456": [1, ("svcPLANTED99887766",)], "n": 3}
    assert redact.scrub(record) == {"a": "key=<redacted:OPENAI_API_KEY>;", "<redacted:OPENAI_API_KEY>":
                                    [1, ("svcPLANTED99887766",)], "n": 3}
    listed = redact.scrub(record, extra=["MY_SERVICE_TOKEN"])
    assert listed["<redacted:OPENAI_API_KEY>"] == [1, ("<redacted:MY_SERVICE_TOKEN>",)]


def test_short_values_are_left_alone(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "1")
    assert redact.scrub({"step": "1"}) == {"step": "1"}


def test_saved_recipe_and_wandb_config_are_redacted(tmp_path, monkeypatch):
    from rlvid.config import recipe_to_dict, save_recipe
    from rlvid.config.schema import Recipe

    monkeypatch.setenv("WANDB_API_KEY", "wandbPLANTED0123456789")
    recipe = Recipe()
    recipe.logging.run_name = "run-wandbPLANTED0123456789"
    text = save_recipe(recipe, tmp_path / "recipe.yaml").read_text()
    assert "wandbPLANTED" not in text and "<redacted:WANDB_API_KEY>" in text
    assert recipe_to_dict(recipe)["logging"]["run_name"] == "run-<redacted:WANDB_API_KEY>"


def test_log_filter_redacts_formatted_messages(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_PLANTED_0123456789")
    logger = logging.getLogger("rlvid.test_redact")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        redact.install_log_filter(logger)
        redact.install_log_filter(logger)  # once per handler
        assert sum(isinstance(f, redact.RedactFilter) for f in handler.filters) == 1
        logger.warning("header Authorization: Bearer %s", "hf_PLANTED_0123456789")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().strip() == "header Authorization: Bearer <redacted:HF_TOKEN>"


def test_recipe_keys_hold_variable_names_and_errors_do_not_echo_a_pasted_key(tmp_path):
    from rlvid.config import load_recipe
    from rlvid.config.errors import RecipeError

    pasted = "sk-live/abc+def=0123456789"
    (tmp_path / "r.yaml").write_text(f"rollout:\n  vllm:\n    api_key_env: '{pasted}'\n")
    try:
        load_recipe(tmp_path / "r.yaml")
    except RecipeError as e:
        assert "rollout.vllm.api_key_env" in str(e) and pasted not in str(e)
    else:
        raise AssertionError("a key pasted into api_key_env must be refused")
    (tmp_path / "ok.yaml").write_text("rollout:\n  vllm:\n    api_key_env: RLVID_VLLM_KEY\nlogging:\n"
                                      "  secret_env: [MY_JUDGE_KEY]\n")
    assert load_recipe(tmp_path / "ok.yaml").rollout.vllm.api_key_env == "RLVID_VLLM_KEY"
