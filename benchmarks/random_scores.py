"""Mean return of a uniformly random policy on each preset environment.

These are the "random" anchors of ``jaxpg.analysis.scores`` (score normalisation for
``jaxpg compare``). Actions are drawn uniformly (discrete: each action; box:
uniform in the bounds), episodes run to termination or the env's time limit.

    .venv/bin/python benchmarks/random_scores.py --episodes 1000
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg  # noqa: F401  (XLA flags)
from jaxpg.envs import make_env

ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")


def random_returns(name: str, episodes: int, seed: int = 0) -> np.ndarray:
    env, params = make_env(name)
    space = env.action_space(params)
    horizon = int(params.max_steps_in_episode)

    def episode(key):
        key, reset_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def step(carry, _):
            key, state, total, alive = carry
            key, act_key, step_key = jax.random.split(key, 3)
            action = space.sample(act_key)
            out = env.step(step_key, state, action, params)
            _, state, reward, done = out[0], out[1], out[2], out[3]
            if len(out) == 6:  # gymnax >= 1.0: (obs, state, r, term, trunc, info)
                done = jnp.logical_or(out[3], out[4])
            total = total + jnp.where(alive, reward, 0.0)
            return (key, state, total, alive & ~done), None

        init = (key, state, jnp.float32(0.0), jnp.bool_(True))
        (_, _, total, _), _ = jax.lax.scan(step, init, None, length=horizon)
        return total

    keys = jax.random.split(jax.random.key(seed), episodes)
    return np.asarray(jax.jit(jax.vmap(episode))(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    for name in ENVS:
        r = random_returns(name, args.episodes)
        se = r.std(ddof=1) / np.sqrt(r.size)
        print(
            f"{name:<26} mean {r.mean():9.2f}  (standard error {se:.2f}, "
            f"{r.size} episodes)"
        )


if __name__ == "__main__":
    main()
