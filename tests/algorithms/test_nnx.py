"""``flax.nnx`` torsos through ``policy_network=`` / ``critic_network=``
(:mod:`jaxpg.nnx_bridge`): module instances (every seed starts from the
module's parameters) and factories ``rngs -> nnx.Module`` (every seed builds
its own), and torsos with state other than parameters refused at
``make_train`` with the state named."""

from __future__ import annotations

import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from memory_envs import CueRecall

import jaxpg
from jaxpg.experiment import checkpoint


class Torso(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(3, 16, rngs=rngs)

    def __call__(self, obs):
        return jnp.tanh(self.dense(obs.reshape((obs.shape[0], -1))))


class GRU(nnx.Module):
    """A recurrent NNX torso of jaxpg's protocol."""

    def __init__(self, rngs: nnx.Rngs, hidden: int = 8):
        # jaxpg's orthogonal: flax's draws, safe to vmap on a CPU
        init = jaxpg.initializers.orthogonal()
        self.cell = nnx.GRUCell(3, hidden, recurrent_kernel_init=init, rngs=rngs)
        self.hidden = hidden

    def initialize_carry(self, batch_size: int):
        return jnp.zeros((batch_size, self.hidden))

    def __call__(self, carry, obs, reset):
        carry = jnp.where(reset[:, None], 0.0, carry)
        return self.cell(carry, obs)


ENV = CueRecall()
CFG = jaxpg.Config(
    env="custom",
    algo="ppo",
    num_envs=8,
    rollout_steps=4,
    total_steps=8 * 4 * 30,
    num_minibatches=2,
    lr=1e-2,
)


@pytest.fixture(scope="module")
def seeds():
    torso = Torso(nnx.Rngs(0))
    before = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(torso, nnx.Param)))
    # The critic's torso by its class: a factory (its constructor takes rngs).
    outs = jaxpg.train_seeds(
        CFG, 4, env=ENV, policy_network=torso, critic_network=Torso
    )
    return torso, before, outs


def test_nnx_torso_trains_over_four_seeds(seeds):
    """The NNX parameters are the torso's entry of the params pytree, vmapped
    over 4 seeds; training changes them (and leaves the module as built)."""
    torso, before, outs = seeds
    kernel = outs.params["torso"]["dense"]["kernel"]
    assert kernel.shape == (4, 3, 16)
    for i in range(4):
        assert not np.allclose(kernel[i], before["dense"]["kernel"])
    after = nnx.to_pure_dict(nnx.state(torso, nnx.Param))
    np.testing.assert_array_equal(after["dense"]["kernel"], before["dense"]["kernel"])
    # Seeds differ (head, envs and actions are drawn per seed).
    assert not np.allclose(kernel[0], kernel[1])
    assert np.all(np.isfinite(outs.metrics["episode_return"][:, -1]))
    # The factory-built critic torso trained too, one per seed.
    critic = outs.state.params["critic"]["torso"]["dense"]["kernel"]
    assert critic.shape == (4, 3, 16) and np.all(np.isfinite(critic))


def _initial_torsos(torso) -> np.ndarray:
    """Two seeds' initial torso kernels ``[2, 3, 16]``, as ``make_train``
    draws them (one key per seed, split for torso and head)."""
    spec = jaxpg.envs.env_spec(ENV, ENV.default_params)
    policy = jaxpg.networks.make_policy(spec, torso=torso)
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    return np.asarray(jax.jit(jax.vmap(policy.init))(keys)["torso"]["dense"]["kernel"])


def test_a_factory_gives_each_seed_its_own_initial_parameters():
    """``rngs -> nnx.Module``: each seed's torso is built from its own key,
    as ``factory(nnx.Rngs(key))`` builds it; a module instance gives every
    seed its own parameters."""
    kernels = _initial_torsos(lambda rngs: Torso(rngs))
    assert not np.allclose(kernels[0], kernels[1])
    key = jax.random.split(jax.random.key(0))[0]  # seed 0's torso key
    want = Torso(nnx.Rngs(key)).dense.kernel[...]
    np.testing.assert_array_equal(kernels[0], want)
    module = Torso(nnx.Rngs(5))
    same = _initial_torsos(module)
    np.testing.assert_array_equal(same[0], module.dense.kernel[...])
    np.testing.assert_array_equal(same[0], same[1])


def test_nnx_params_round_trip_a_checkpoint_and_evaluate(seeds, tmp_path):
    torso, _, outs = seeds
    one = jax.tree.map(lambda x: x[0], outs.params)
    path = checkpoint.save_tree(tmp_path / "params", one)
    back = checkpoint.restore_tree(path, jax.tree.map(jnp.zeros_like, one))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(a, b)
    key = jax.random.key(3)
    ret = jaxpg.evaluate(CFG, back, key, 16, env=ENV, policy_network=torso)
    want = jaxpg.evaluate(CFG, one, key, 16, env=ENV, policy_network=torso)
    assert ret.shape == (16,)
    np.testing.assert_array_equal(ret, want)


def test_recurrent_nnx_torso_trains_and_evaluates():
    gru = GRU(nnx.Rngs(0))
    out = jax.jit(jaxpg.make_train(CFG, env=ENV, policy_network=gru))(jax.random.key(0))
    assert out.state.carry["policy"].shape == (CFG.num_envs, 8)
    start = jax.tree.leaves(nnx.to_pure_dict(nnx.state(gru, nnx.Param)))
    trained = jax.tree.leaves(out.params["torso"])
    assert len(start) == len(trained)
    assert all(not np.allclose(a, b) for a, b in zip(start, trained, strict=True))
    ret = jaxpg.evaluate(CFG, out, jax.random.key(1), 8, env=ENV, policy_network=gru)
    assert ret.shape == (8,) and np.all(np.isfinite(ret))


class NNXBatchNorm(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(3, 4, rngs=rngs)
        self.norm = nnx.BatchNorm(4, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.dense(x))


class NNXDropout(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(3, 4, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.drop(self.dense(x))


class LinenBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.BatchNorm(use_running_average=False)(nn.Dense(4)(x))


class LinenDropout(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dropout(0.5, deterministic=False)(nn.Dense(4)(x))


@pytest.mark.parametrize(
    ("torso", "named"),
    [
        (lambda: NNXBatchNorm(nnx.Rngs(0)), "BatchStat"),
        (lambda: NNXDropout(nnx.Rngs(0)), "Dropout at drop"),
        (LinenBatchNorm, "'batch_stats'"),
        (LinenDropout, "'dropout'"),
    ],
)
def test_state_other_than_params_is_refused_by_name(torso, named):
    with pytest.raises(ValueError, match=named):
        jaxpg.make_train(CFG, env=ENV, critic_network=torso())


class NNXEvalMode(nnx.Module):
    """Evaluation-mode state: a BatchNorm reading its running statistics and
    a deterministic Dropout (both keep state that is not nnx.Param)."""

    def __init__(self, rngs):
        self.dense = nnx.Linear(3, 4, rngs=rngs)
        self.norm = nnx.BatchNorm(4, use_running_average=True, rngs=rngs)
        self.drop = nnx.Dropout(0.5, deterministic=True, rngs=rngs)

    def __call__(self, x):
        return self.drop(self.norm(self.dense(x)))


def test_evaluation_mode_state_is_accepted_read_and_not_trained():
    torso = NNXEvalMode(nnx.Rngs(0))
    torso.norm.mean[...] = jnp.full((4,), 0.5)  # statistics to be read
    train = jaxpg.make_train(
        CFG.replace(total_steps=8 * 4 * 2), env=ENV, policy_network=torso
    )
    out = jax.jit(train)(jax.random.key(0))
    # Only the parameters are trained state; the statistics are not in it.
    assert set(out.params["torso"]) == {"dense", "norm"}
    assert set(out.params["torso"]["norm"]) == {"scale", "bias"}
    # The torso's features read the running statistics given.
    spec = jaxpg.envs.env_spec(ENV, ENV.default_params)
    policy = jaxpg.networks.make_policy(spec, torso=torso)
    params = policy.init(jax.random.key(1))
    obs = jnp.ones((2, 3))
    other = NNXEvalMode(nnx.Rngs(0))  # mean 0
    other_policy = jaxpg.networks.make_policy(spec, torso=other)
    a = policy.apply(params, obs).logits
    b = other_policy.apply(params, obs).logits
    assert not np.allclose(a, b)


def test_other_objects_name_both_accepted_kinds():
    kinds = r"flax\.linen\.Module or a flax\.nnx\.Module.*function rngs -> nnx"
    with pytest.raises(TypeError, match=kinds + ".*returned a Rngs"):
        jaxpg.make_train(CFG, env=ENV, policy_network=lambda obs: obs)
    with pytest.raises(TypeError, match=kinds + ".*raised ValueError: no"):
        jaxpg.make_train(CFG, env=ENV, policy_network=_fails)
    with pytest.raises(TypeError, match=kinds):
        jaxpg.make_train(CFG, env=ENV, policy_network=3)


def _fails(rngs):
    raise ValueError("no")


LAZY_NNX = """
import sys
import jaxpg, jaxpg.cli.main
assert "flax.nnx" not in sys.modules and "IPython" not in sys.modules
import jax, jax.numpy as jnp
from flax import nnx

class Torso(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(4, 8, rngs=rngs)
    def __call__(self, obs):
        return self.dense(obs)

spec = jaxpg.envs.env_spec(*jaxpg.envs.make_env("CartPole-v1"))
for torso in (Torso(nnx.Rngs(0)), Torso):  # an instance and a factory
    policy = jaxpg.networks.make_policy(spec, torso=torso)
    params = policy.init(jax.random.key(0))
    print(policy.apply(params, jnp.ones((2, 4))).logits.shape)
"""


def test_import_jaxpg_leaves_nnx_unloaded_and_nnx_torsos_work_after():
    # flax.nnx (with IPython, which it probes at import) is about a third of a
    # second of every import jaxpg; it loads when an NNX torso arrives.
    out = subprocess.run(
        [sys.executable, "-c", LAZY_NNX], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["(2,", "2)"] * 2, out.stdout
