"""Extension points: the user's networks, optimizer and losses are the ones that
train; REINFORCE's loss is the loss kernels'; a plain vmap is a first-class
path."""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxpg
from jaxpg.algorithms import make_actor_critic, ppo_policy_loss
from jaxpg.algorithms.reinforce import buffer_length
from jaxpg.drivers.train import make_parts
from jaxpg.kernels import losses
from jaxpg.kernels.advantages import standardise
from jaxpg.kernels.returns import discounted_returns
from jaxpg.rollout import collect_episodes


class Tagged(nn.Module):
    """A small torso with a recognisable parameter name."""

    width: int = 8

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        return nn.relu(nn.Dense(self.width, name="tagged")(x))


PPO_TINY = jaxpg.Config(
    algo="ppo", num_envs=4, rollout_steps=8, total_steps=4 * 8 * 3, num_minibatches=2
)
RF_TINY = jaxpg.Config(num_envs=4, rollout_steps=8, total_steps=4 * 8 * 3)


def _leaves_changed(before, after) -> bool:
    return any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    )


# A user's optimizer whose learning rate follows a schedule of its step count.
SCHEDULE = optax.cosine_decay_schedule(1e-2, decay_steps=100)
SCHEDULED_ADAMW = optax.inject_hyperparams(optax.adamw)(learning_rate=SCHEDULE)


@pytest.fixture(scope="module")
def custom_ppo():
    """PPO_TINY with the user's networks and optimizer (``SCHEDULED_ADAMW``):
    the initial state and the training output (one program for the tests of
    the networks and of the schedule)."""
    kw = dict(
        policy_network=Tagged(8), critic_network=Tagged(6), optimizer=SCHEDULED_ADAMW
    )
    algo = jaxpg.make_algorithm(PPO_TINY, **kw)
    init = jax.jit(algo.init)(jax.random.key(0))
    out = jax.jit(jaxpg.make_train(PPO_TINY, **kw))(jax.random.key(0))
    return init, out


def test_custom_policy_and_critic_networks_are_trained(custom_ppo):
    init, out = custom_ppo
    policy_torso = out.params["torso"]["params"]
    critic_torso = out.state.params["critic"]["torso"]["params"]
    assert policy_torso["tagged"]["kernel"].shape == (4, 8)
    assert critic_torso["tagged"]["kernel"].shape == (4, 6)
    assert out.params["head"]["params"]["kernel"].shape == (8, 2)  # jaxpg's head
    assert _leaves_changed(init.params["policy"]["torso"], out.params["torso"])
    assert _leaves_changed(init.params["critic"]["torso"], critic_torso)


def test_evaluate_rebuilds_the_custom_policy(custom_ppo):
    _, out = custom_ppo
    rets = jaxpg.evaluate(
        PPO_TINY, out.params, jax.random.key(1), 4, policy_network=Tagged(8)
    )
    assert rets.shape == (4,) and np.all(np.asarray(rets) >= 1)
    # The default MLP cannot read these parameters: the network matters, and
    # the error names the argument.
    with pytest.raises(ValueError, match="params do not fit the policy"):
        jaxpg.evaluate(PPO_TINY, out.params, jax.random.key(1), 4)


def test_torso_that_does_not_return_features_is_a_clear_error():
    class Flat(nn.Module):
        @nn.compact
        def __call__(self, obs):
            return nn.Dense(3)(obs)[..., 0]  # [N]: no feature axis

    with pytest.raises(ValueError, match=r"policy_network .*\[N, F\]"):
        jaxpg.make_algorithm(RF_TINY, policy_network=Flat())
    with pytest.raises(TypeError, match=r"policy_network=.*flax.linen.Module"):
        jaxpg.make_algorithm(RF_TINY, policy_network=lambda x: x)
    with pytest.raises(TypeError, match=r"optimizer=.*GradientTransformation"):
        jaxpg.make_algorithm(RF_TINY, optimizer="adam")


@pytest.mark.parametrize("cfg", [RF_TINY, PPO_TINY], ids=["reinforce", "ppo"])
def test_zero_learning_rate_optimizer_leaves_params_unchanged(cfg):
    algo = jaxpg.make_algorithm(cfg, optimizer=optax.sgd(0.0))
    state = algo.init(jax.random.key(0))
    new, metrics = jax.jit(algo.update)(state)
    chex.assert_trees_all_equal(state.params, new.params)
    assert float(metrics["grad_norm"]) > 0  # gradients were there to apply


@pytest.mark.parametrize(
    ("algo", "steps_per_update"), [("rf", 1), ("ppo", 4 * 2)], ids=["rf", "ppo"]
)
def test_schedule_step_count_advances_once_per_optimizer_step(
    algo, steps_per_update, request
):
    if algo == "ppo":  # PPO_TINY with the user's networks, and SCHEDULED_ADAMW
        out = request.getfixturevalue("custom_ppo")[1]
    else:
        train = jaxpg.make_train(RF_TINY, optimizer=SCHEDULED_ADAMW)
        out = jax.jit(train)(jax.random.key(0))
    count = int(out.state.opt_state.count)
    # REINFORCE skips the step of an update past its budget (no data).
    steps = np.diff(np.concatenate([[0], np.asarray(out.metrics["env_steps"])]))
    assert count == int(np.sum(steps > 0)) * steps_per_update > 0
    lr = float(out.state.opt_state.hyperparams["learning_rate"])
    np.testing.assert_allclose(lr, float(SCHEDULE(count - 1)), rtol=1e-6)


def test_default_optimizer_takes_the_traced_learning_rate():
    """The default optimizer reads ``hparams.lr``: vmapping two rates trains
    two different runs in one program, each equal to its own config's run."""
    train = jaxpg.make_train(RF_TINY)
    lrs = jnp.array([1e-3, 3e-2], jnp.float32)
    hps = jax.vmap(lambda lr: RF_TINY.hyperparams()._replace(lr=lr))(lrs)
    keys = jnp.stack([jax.random.key(0)] * 2)
    outs = jax.jit(jax.vmap(train))(keys, hps)
    for i, lr in enumerate((1e-3, 3e-2)):
        single = jax.jit(jaxpg.make_train(RF_TINY.replace(lr=lr)))(jax.random.key(0))
        # A vmapped lane rounds a few ulps apart from a single run (at most
        # 3.6e-7 measured after these 3 updates); a rate not applied, or
        # another member's, moves the parameters by about lr * grad >= 1e-4.
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], outs.params),
            single.params,
            rtol=1e-5,
            atol=1e-6,
        )


def test_policy_loss_is_replaceable_without_forking():
    """An actor-critic learner with the user's policy loss (here: PPO's with a
    recorded diagnostic) trains through the same machinery."""

    def my_loss(log_probs, mb, hp):
        loss, diag = ppo_policy_loss(log_probs, mb, hp)
        return loss, {**diag, "mine": jnp.float32(7.0)}

    parts = make_parts(PPO_TINY)
    algo = make_actor_critic(
        PPO_TINY, parts, policy_loss=my_loss, num_epochs=2, num_minibatches=2
    )
    state, metrics = jax.jit(algo.update)(algo.init(jax.random.key(0)))
    assert float(metrics["mine"]) == 7.0
    assert int(state.opt_state.count) == 4


def test_reinforce_loss_and_gradient_equal_the_kernels_on_the_whole_batch():
    """The chunked, packed loss of REINFORCE equals the loss kernels applied to
    the unpacked [L, B] batch (standardise baseline, entropy bonus), value and
    gradient."""
    cfg = RF_TINY.replace(ent_coef=0.05, rollout_steps=5)
    parts = make_parts(cfg)
    algo = jaxpg.make_algorithm(cfg)
    state = algo.init(jax.random.key(3))
    grads, metrics, _ = jax.jit(algo.estimate)(state)

    @jax.jit  # the kernels' loss and gradient, as one program
    def kernel_loss_and_grad(state):
        _, key_rollout = jax.random.split(state.key)
        batch, _, _ = collect_episodes(
            key_rollout,
            parts.stepper,
            parts.policy.apply,
            state.params["policy"],
            parts.spec,
            state.env_state,
            state.obs,
            cfg.rollout_steps,
            buffer_length(cfg, parts.spec),
        )
        returns = discounted_returns(
            batch.rewards,
            cfg.gamma * (1.0 - batch.dones),
            jnp.zeros_like(batch.rewards[0]),
        )
        adv = standardise(returns * batch.mask, batch.mask)

        def kernel_loss(params):
            dist = parts.policy.apply(params["policy"], batch.obs)
            logp = dist.log_prob(batch.actions)
            pg = losses.policy_gradient_loss(
                logp, adv, batch.mask, normaliser=cfg.num_envs * cfg.rollout_steps
            )
            return pg + cfg.ent_coef * losses.entropy_loss(dist.entropy(), batch.mask)

        return jax.value_and_grad(kernel_loss)(state.params)

    loss, kernel_grads = kernel_loss_and_grad(state)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(grads, kernel_grads, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("algo", ["reinforce", "a2c", "ppo"])
def test_plain_vmap_equals_train_seeds_for_every_algorithm(algo):
    cfg = jaxpg.Config(
        algo=algo, num_envs=4, rollout_steps=8, total_steps=4 * 8 * 3, num_minibatches=2
    )
    keys = jaxpg.drivers.train.seed_keys(3)
    plain = jax.jit(jax.vmap(jaxpg.make_train(cfg)))(keys)
    ours = jaxpg.train_seeds(cfg, 3)
    chex.assert_trees_all_close(plain.params, ours.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(plain.metrics["env_steps"], ours.metrics["env_steps"])


def test_env_argument_must_agree_with_config_env():
    env, params = jaxpg.envs.make_env("Acrobot-v1")
    with pytest.raises(ValueError, match=r"Config.env='CartPole-v1'.*'custom'"):
        jaxpg.make_train(jaxpg.Config(env="CartPole-v1"), env=env, env_params=params)
    jaxpg.make_train(jaxpg.Config(env="Acrobot-v1", total_steps=10**4), env=env)
