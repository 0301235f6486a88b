"""Throughput baseline: the textbook PyTorch REINFORCE loop on CartPole-v1.

This script measures how many environment steps per second the *ordinary* way of
writing REINFORCE achieves, so that jaxpg's numbers have a reference point. The
loop is deliberately the one found in tutorials, with nothing tuned:

* a single ``gymnasium.make("CartPole-v1")`` environment stepped from Python,
* a 4-128-128-2 MLP (Linear-ReLU-Linear-ReLU-Linear) whose logits define a
  ``torch.distributions.Categorical`` policy, sampled one observation at a time,
* at the end of each episode the discounted returns (gamma 0.99) are computed,
  standardised within the episode as ``(G - mean) / (std + 1e-8)``, and one Adam
  step (lr 1e-3) is taken on ``loss = -sum(log_prob * G)``.

What is timed: after a warm-up of a few episodes (which train the policy but are
not counted), episodes are run until the wall-clock budget is spent; the current
episode is always finished, including its update. The reported throughput is the
number of environment steps taken in the timed episodes divided by the elapsed
time of those episodes. Every one of those steps feeds the gradient, so this is
"steps per second of the textbook loop" - policy forward passes, environment
stepping, the backward pass and the optimiser all included.

torch's default intra-op thread count is used unless ``--threads N`` is given.

Usage::

    python benchmarks/torch_reinforce.py --seconds 20 --seed 0 \\
        --out benchmarks/results/torch_reinforce.json

Other benchmark scripts can ``import torch_reinforce`` and call :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

ENV_ID = "CartPole-v1"
HIDDEN = 128
LEARNING_RATE = 1e-3
GAMMA = 0.99
WARMUP_EPISODES = 5
LAST_N = 20


def cpu_description() -> str:
    """CPU model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def make_policy(obs_dim: int, n_actions: int) -> nn.Module:
    """The 4-128-128-2 policy network producing action logits."""
    return nn.Sequential(
        nn.Linear(obs_dim, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, n_actions),
    )


def discounted_returns(rewards: list[float], gamma: float) -> torch.Tensor:
    """Reward-to-go ``G_t = r_t + gamma * G_{t+1}``, standardised per episode."""
    returns: list[float] = []
    running = 0.0
    for reward in reversed(rewards):
        running = reward + gamma * running
        returns.append(running)
    returns.reverse()
    g = torch.tensor(returns, dtype=torch.float32)
    # A one-step episode has an undefined std; treat it as zero spread.
    std = g.std() if g.numel() > 1 else torch.tensor(0.0)
    return (g - g.mean()) / (std + 1e-8)


def run_episode(
    env: gym.Env,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    seed: int | None = None,
) -> tuple[int, float]:
    """Play one episode, then take one REINFORCE step. Returns (steps, return)."""
    obs, _ = env.reset(seed=seed)
    log_probs: list[torch.Tensor] = []
    rewards: list[float] = []
    done = False
    while not done:
        logits = policy(torch.as_tensor(obs, dtype=torch.float32))
        dist = torch.distributions.Categorical(logits=logits)
        action = dist.sample()
        log_probs.append(dist.log_prob(action))
        obs, reward, terminated, truncated, _ = env.step(action.item())
        rewards.append(float(reward))
        done = terminated or truncated

    g = discounted_returns(rewards, GAMMA)
    loss = -(torch.stack(log_probs) * g).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return len(rewards), float(sum(rewards))


def run(seconds: float, seed: int, threads: int | None = None) -> dict[str, Any]:
    """Train with the textbook loop for about ``seconds`` and report throughput.

    ``threads`` sets torch's intra-op thread count for the duration of the call
    (the previous value is restored afterwards); ``None`` keeps torch's default.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        np.random.seed(seed)
        env = gym.make(ENV_ID)
        env.action_space.seed(seed)
        obs_dim = int(np.prod(env.observation_space.shape))
        n_actions = int(env.action_space.n)
        policy = make_policy(obs_dim, n_actions)
        optimizer = torch.optim.Adam(policy.parameters(), lr=LEARNING_RATE)

        episode_returns: list[float] = []
        # Seed the environment once; later resets continue its RNG stream.
        for i in range(WARMUP_EPISODES):
            _, ret = run_episode(env, policy, optimizer, seed if i == 0 else None)
            episode_returns.append(ret)

        timed_steps = 0
        timed_episodes = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds:
            steps, ret = run_episode(env, policy, optimizer)
            episode_returns.append(ret)
            timed_steps += steps
            timed_episodes += 1
            elapsed = time.perf_counter() - start
        env.close()
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)

    last = episode_returns[-LAST_N:]
    return {
        "benchmark": "torch_reinforce",
        "env_id": ENV_ID,
        "seed": seed,
        "seconds_budget": seconds,
        "elapsed_s": elapsed,
        "warmup_episodes": WARMUP_EPISODES,
        "env_steps": timed_steps,
        "episodes": timed_episodes,
        "steps_per_second": timed_steps / elapsed,
        f"mean_return_last_{LAST_N}": float(np.mean(last)),
        "network": f"{obs_dim}-{HIDDEN}-{HIDDEN}-{n_actions}",
        "learning_rate": LEARNING_RATE,
        "gamma": GAMMA,
        "torch_version": torch.__version__,
        "gymnasium_version": gym.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "cpu": cpu_description(),
        "threads": used_threads,
        "threads_requested": threads,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="timed budget (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own default)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/torch_reinforce.json"),
        help="where to write the JSON result",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args.seconds, args.seed, args.threads)
    print(
        f"textbook torch REINFORCE on {result['env_id']}: "
        f"{result['steps_per_second']:,.0f} env steps/s "
        f"({result['env_steps']} steps, {result['episodes']} episodes "
        f"in {result['elapsed_s']:.1f} s)"
    )
    print(
        f"mean return of last {LAST_N} episodes: "
        f"{result[f'mean_return_last_{LAST_N}']:.1f}"
    )
    print(
        f"torch {result['torch_version']}, gymnasium {result['gymnasium_version']}, "
        f"{result['threads']} thread(s), CPU: {result['cpu']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
