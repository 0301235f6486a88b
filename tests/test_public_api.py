"""The public names stay: ``jaxpg``'s and ``jaxpg.sequence``'s exports, and
the calls of the public API that outside code makes (the keywords bind, the
result types have their fields). Signatures only: nothing is traced."""

from __future__ import annotations

import inspect

import pytest

import jaxpg
import jaxpg.sequence

JAXPG = """
Algorithm Categorical Config DiagGaussian Hyperparams Parts TrainOutput
TrainState Transition algorithms discounted_returns entropy_loss envs
evaluate generalized_advantage_estimation group_normalised kl_estimate
leave_one_out load_policy make_algorithm make_parts make_train mean_baseline
networks no_baseline parallel policy_gradient_loss ppo_clip_loss presets
standardise stats sweep train_seeds value_loss
""".split()  # noqa: SIM905 (a list to read)

SEQUENCE = """
ADVANTAGES AGGREGATIONS Batch CharTokenizer DPOOutput Hyperparams
KL_ESTIMATORS KL_PLACEMENTS KVCache PreferencePairs RL RLConfig RLOutput
RLState Rollout SFTOutput Samples SequenceModel TASKS Task TransformerConfig
aggregate apply as_model bradley_terry_loss data_parallel dataset_task
dpo_loss entropy evaluate exact_kl from_linen from_nnx group_advantages
host_reward init init_cache kl_shaped_rewards kl_tokens learned_reward_task
load_reference load_reward_model loss_fn make_batch make_dpo make_dpo_train
make_reward_model_train make_rl make_rl_train make_sft make_task
packed_layout params_hash preference_accuracy preference_pairs
response_logits reward_hacking_flag reward_scores rollout run_updates sample
sample_without_cache save_reference save_reward_model score
sequence_log_probs surrogate_terms token_log_probs train_seeds transformer
with_reward
""".split()  # noqa: SIM905 (a list to read)

PARTS = dict(policy_network=None, critic_network=None, optimizer=None)


@pytest.mark.parametrize(
    ("module", "names"), [(jaxpg, JAXPG), (jaxpg.sequence, SEQUENCE)]
)
def test_exported_names_stay(module, names):
    missing = [n for n in names if n not in module.__all__ or not hasattr(module, n)]
    assert not missing, f"{module.__name__} no longer exports {missing}"


def _binds(fn, *args, **kwargs):
    inspect.signature(fn).bind(*args, **kwargs)


def test_the_documented_calls_bind():
    """The calls of shared/DESIGN.md's public API, by their keywords."""
    cfg, key, out = object(), object(), object()
    _binds(jaxpg.presets.get, "CartPole-v1", "reinforce")
    _binds(jaxpg.make_train, cfg, env=None, env_params=None, **PARTS)
    _binds(jaxpg.make_algorithm, cfg, **PARTS)
    _binds(jaxpg.train_seeds, cfg, num_seeds=16, **PARTS)
    _binds(jaxpg.evaluate, cfg, out, key, num_episodes=100, **PARTS)
    _binds(jaxpg.discounted_returns, 0, 0, 0)
    _binds(jaxpg.sweep, cfg, {"lr": [1e-3]}, num_seeds=8)
    for name in (
        "from_brax",
        "from_jumanji",
        "from_navix",
        "from_xminigrid",
        "from_pgx",
    ):
        assert callable(getattr(jaxpg.envs, name)), name
    _binds(jaxpg.envs.from_brax, object(), episode_length=1000)
    _binds(jaxpg.networks.GRUTorso, hidden_size=64)
    assert {"params", "metrics"} <= set(jaxpg.TrainOutput._fields)


def test_a_config_is_checked_and_a_preset_is_a_config():
    with pytest.raises(ValueError, match="algo"):
        jaxpg.Config(env="CartPole-v1", algo="nope")
    assert isinstance(jaxpg.presets.get("CartPole-v1", "reinforce"), jaxpg.Config)
