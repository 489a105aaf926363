"""Algorithm registries by name: aliases, "did you mean" at recipe load, and plugins loaded like rewards."""

from __future__ import annotations

import pytest
import torch

from rlvid.algos import LOSS_AGGREGATIONS, POLICY_LOSSES, aggregate_loss, compute_policy_loss
from rlvid.config import RecipeError, load_recipe
from rlvid.trainers.hooks import resolve_hook

TOKEN_LOSS = torch.tensor([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])

SIGN_LOSS = '''
import torch

def sign_loss(logp, old_logp, advantages, mask, config):
    """-A * logp * scale: a plugin policy loss reading its own option."""
    return -advantages * logp * config["scale"], {"scale": torch.tensor(float(config["scale"]))}
'''


@pytest.mark.parametrize("alias, name", [("grpo", "seq_mean_token_mean"), ("dapo", "token_mean"),
                                         ("dr_grpo", "seq_mean_token_sum_norm")])
def test_paper_names_are_aliases_of_what_the_modes_compute(alias, name):
    assert LOSS_AGGREGATIONS.get(alias) is LOSS_AGGREGATIONS.get(name)
    assert aggregate_loss(TOKEN_LOSS, MASK, alias, max_completion_length=3) == aggregate_loss(
        TOKEN_LOSS, MASK, name, max_completion_length=3)


def test_recipe_names_are_checked_against_the_registries_when_it_loads(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("trainer:\n  kl_estimator: low_var\n")
    with pytest.raises(RecipeError, match=r"'trainer.kl_estimator' must be one of .*Did you mean 'low_var_kl'\?"):
        load_recipe(path)
    path.write_text("mdpo:\n  loss: ipoo\n")
    with pytest.raises(RecipeError, match=r"'mdpo.loss' .*Did you mean 'ipo'\?"):
        load_recipe(path)
    path.write_text("trainer:\n  policy_loss: ./missing.py:fn\n")
    with pytest.raises(RecipeError, match=r"'trainer.policy_loss' policy loss './missing.py:fn': file not found"):
        load_recipe(path)


def test_a_plugin_policy_loss_is_found_from_the_recipe_folder_and_gets_its_own_options(tmp_path, monkeypatch):
    (tmp_path / "losses.py").write_text(SIGN_LOSS)
    path = tmp_path / "r.yaml"
    path.write_text("trainer:\n  policy_loss: ./losses.py:sign_loss\n  policy_loss_kwargs: {scale: 2.0}\n")
    monkeypatch.chdir(tmp_path.parent)  # the recipe's folder, not the working folder, finds the file
    recipe = load_recipe(path)
    fn = POLICY_LOSSES.get(recipe.trainer.policy_loss)
    assert fn.__name__ == "sign_loss"
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, metrics = compute_policy_loss(logp, logp.detach(), torch.tensor([1.0]), torch.ones(1, 2),
                                        loss=recipe.trainer.policy_loss, loss_agg="token_mean",
                                        loss_kwargs=dict(recipe.trainer.policy_loss_kwargs))
    assert float(loss.detach()) == pytest.approx(3.0) and float(metrics["scale"]) == 2.0  # -(1 * -1.5) * 2


def test_hooks_load_from_files_like_every_plugin(tmp_path):
    (tmp_path / "hooks.py").write_text("def count(samples, **_):\n    return {'n': len(samples)}\n")
    assert resolve_hook("./hooks.py:count", tmp_path)(samples=[1, 2]) == {"n": 2}
    with pytest.raises(ValueError, match=r"evaluation hook './hooks.py:nope': .*has no function 'nope'"):
        resolve_hook("./hooks.py:nope", tmp_path)


def test_a_plugin_dpo_loss_gets_beta_and_its_own_options(tmp_path):
    from rlvid.algos import compute_dpo_loss

    (tmp_path / "dpo.py").write_text("def hinge(h, margin, config):\n"
                                     "    return (config['width'] - config['beta'] * h).clamp(min=0)\n")
    zeros = torch.zeros(2)
    loss, _ = compute_dpo_loss(torch.tensor([1.0, 3.0]), zeros, zeros, zeros, beta=0.5,
                               loss=f"{tmp_path / 'dpo.py'}:hinge", loss_kwargs={"width": 1.0})
    assert float(loss) == pytest.approx((0.5 + 0.0) / 2)  # h = 1 and 3: hinge 1 - 0.5 and 0


def test_a_recipe_reward_may_carry_a_label(tmp_path):
    from rewards import compose_rewards

    path = tmp_path / "r.yaml"
    path.write_text("rewards:\n  functions:\n    - {name: format, label: shape, weight: 0.5}\n")
    reward_set = compose_rewards(load_recipe(path).rewards.functions)
    assert reward_set.labels == ["shape"]
    assert "rewards/shape" in reward_set(["<answer>x</answer>"], task=["mcq"]).metrics()
