r"""Hyperparameter sweeps: every setting × every seed in one compiled program.

The sweepable fields are those of :class:`jaxpg.Hyperparams` (:data:`SWEEPABLE`:
``lr, gamma, ent_coef, vf_coef, gae_lambda, clip_eps``): traced scalars that
``make_train(cfg)``'s ``train(key, hparams)`` takes as an argument, so one
program serves every setting. Anything else (``num_envs``, ``hidden``, ...)
changes shapes or control flow and needs a program of its own: sweep it with a
Python loop over :func:`sweep` calls.

Conventions:

- A *grid* ``{"lr": [1e-3, 3e-3], "ent_coef": [0.0, 0.01]}`` expands to the
  settings ``itertools.product`` gives in the grid's key order (the last key
  varies fastest): ``[{lr: 1e-3, ent_coef: 0.0}, {lr: 1e-3, ent_coef: 0.01},
  {lr: 3e-3, ent_coef: 0.0}, {lr: 3e-3, ent_coef: 0.01}]``.
- Setting ``k``, seed ``i`` is the run
  ``make_train(cfg.replace(**settings[k]))(jax.random.key(first_seed + i))``:
  the same random draws, the same result up to float rounding. The same seed
  index uses the same key in every setting (common random numbers).
- Members (settings × seeds, setting-major) are laid out over all devices by
  :func:`jaxpg.drivers.parallel.run_members`.

Shapes: ``K`` settings, ``S`` seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.checks import positive_int
from jaxpg.config import Config, Hyperparams
from jaxpg.drivers.parallel import run_members
from jaxpg.drivers.train import TrainOutput, make_train

__all__ = [
    "SWEEPABLE",
    "EvaluatedSweep",
    "grid_settings",
    "random_settings",
    "sweep",
    "sweep_and_evaluate",
]

SWEEPABLE: tuple[str, ...] = Hyperparams._fields


def _check_field(name: Any, what: str) -> None:
    if name not in SWEEPABLE:
        static = "a Config field that changes shapes or control flow"
        known = "is not a Config field"
        kind = (
            static
            if isinstance(name, str) and name in Config.__dataclass_fields__
            else known
        )
        raise ValueError(
            f"{what} {name!r} cannot be swept in one program ({kind}): sweepable "
            f"fields are {', '.join(SWEEPABLE)}. Run one sweep per value of "
            "any other field."
        )


def grid_settings(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of a grid, in ``itertools.product`` order.

    Args:
      grid: ``{field: [values]}`` over fields of :data:`SWEEPABLE`; the last
        key varies fastest.

    Returns:
      ``K = prod(len(values))`` settings, each ``{field: float}``.

    Raises:
      ValueError: an unknown or non-sweepable field, or an empty or
        non-numeric list of values.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(
            f"grid={grid!r} is invalid: must be a non-empty dict "
            f"{{field: [values]}} over {', '.join(SWEEPABLE)}"
        )
    axes = []
    for name, values in grid.items():
        _check_field(name, "grid field")
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(
                f"grid[{name!r}]={values!r} is invalid: must be a non-empty list "
                "of numbers"
            )
        axes.append([_number(name, v) for v in values])
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*axes)]


def random_settings(
    key: jax.Array,
    ranges: Mapping[str, tuple],
    num_settings: int,
) -> list[dict[str, float]]:
    r"""``num_settings`` settings drawn at random from ranges, reproducibly.

    A range ``(low, high)`` is log-uniform: :math:`\exp U(\log low,
    \log high)` (``0 < low <= high``); ``(low, high, "linear")`` is uniform on
    ``[low, high]``. Each field draws from its own subkey
    ``fold_in(key, position in ranges)``, so the same key and ranges give the
    same settings on every machine.

    Args:
      key: a PRNG key (``jax.random.key(seed)``).
      ranges: ``{field: (low, high[, "log" | "linear"])}`` over
        :data:`SWEEPABLE`.
      num_settings: ``K >= 1``.

    Returns:
      ``K`` settings, each ``{field: float}``.

    Raises:
      ValueError: an unknown or non-sweepable field, a malformed range, or
        an invalid ``num_settings``.
    """
    num_settings = positive_int("num_settings", num_settings)
    if not isinstance(ranges, Mapping) or not ranges:
        raise ValueError(
            f"ranges={ranges!r} is invalid: must be a non-empty dict "
            "{field: (low, high[, 'log' | 'linear'])}"
        )
    columns = {}
    for pos, (name, spec) in enumerate(ranges.items()):
        _check_field(name, "range field")
        low, high, scale = _parse_range(name, spec)
        u = np.asarray(
            jax.random.uniform(
                jax.random.fold_in(key, pos), (num_settings,), jnp.float32
            ),
            np.float64,
        )
        if scale == "log":
            values = np.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            values = low + u * (high - low)
        columns[name] = [float(v) for v in values]
    return [
        {name: col[k] for name, col in columns.items()} for k in range(num_settings)
    ]


def sweep(
    cfg: Config,
    grid: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
    num_seeds: int,
    env: Any = None,
    env_params: Any = None,
    *,
    policy_network: Any = None,
    critic_network: Any = None,
    optimizer: Any = None,
    algorithm: Any = None,
    policy_obs: Any = None,
    critic_obs: Any = None,
    action_mask_fn: Any = None,
    first_seed: int = 0,
    devices: Sequence[Any] | None = None,
) -> tuple[list[dict[str, float]], TrainOutput]:
    r"""Train every setting of ``grid`` with ``num_seeds`` seeds in one program.

    Args:
      cfg: the base configuration; each setting replaces its fields.
      grid: ``{field: [values]}`` (expanded by :func:`grid_settings`), or an
        explicit list of settings ``[{field: value}, ...]`` (e.g. from
        :func:`random_settings`), over :data:`SWEEPABLE`.
      num_seeds: ``S >= 1``; seed ``i`` uses ``jax.random.key(first_seed + i)``
        in every setting.
      env, env_params: a gymnax-API environment (see :func:`jaxpg.make_train`).
      policy_network, critic_network, optimizer, algorithm, policy_obs,
        critic_obs, action_mask_fn: passed to :func:`jaxpg.make_train`.
        ``lr`` cannot be swept with a custom ``optimizer`` (its learning rate
        is its own).
      first_seed: seed of the first run.
      devices: devices to lay the members over; default: all of them.

    Returns:
      ``(settings, outputs)``: the ``K`` settings in order and a
      :class:`jaxpg.TrainOutput` whose leaves have leading ``[K, S]`` axes.

    Raises:
      ValueError: a field that is not sweepable (the message lists the
        sweepable ones), a value the config rejects (the config's message), or
        an invalid ``num_seeds`` / ``first_seed``.
    """
    if isinstance(grid, Mapping):
        settings = grid_settings(grid)
    else:
        settings = _explicit_settings(grid)
    num_seeds = positive_int("num_seeds", num_seeds)
    first_seed = positive_int("first_seed", first_seed, 0)
    if optimizer is not None and any("lr" in s for s in settings):
        raise ValueError(
            "sweeping 'lr' with a custom optimizer= is invalid: the optimizer "
            "brings its own learning rate (sweep its schedule in a loop, or "
            "drop optimizer= to sweep Adam's lr)"
        )
    k, s = len(settings), num_seeds
    seeds, member_hp = _members(cfg, settings, num_seeds, first_seed)
    extensions = {
        name: value
        for name, value in (
            ("policy_network", policy_network),
            ("critic_network", critic_network),
            ("optimizer", optimizer),
            ("algorithm", algorithm),
            ("policy_obs", policy_obs),
            ("critic_obs", critic_obs),
            ("action_mask_fn", action_mask_fn),
        )
        if value is not None
    }
    train = make_train(cfg, env, env_params, **extensions)
    out = run_members(train, seeds, member_hp, devices=devices)
    out = jax.tree.map(lambda x: x.reshape((k, s, *x.shape[1:])), out)
    return settings, out


class EvaluatedSweep(NamedTuple):
    """What :func:`sweep_and_evaluate` returns (on the host).

    Attributes:
      eval_returns: ``[K, S, E]`` every final policy's evaluation returns.
      episode_return: ``[K, S, U]`` the training curves' returns (NaN where
        no episode ended).
      env_steps: ``[K, S, U]`` env steps per seed after each update.
      compile_s, run_s: seconds compiling, and training and evaluating.
    """

    eval_returns: np.ndarray
    episode_return: np.ndarray
    env_steps: np.ndarray
    compile_s: float
    run_s: float


def sweep_and_evaluate(
    cfg: Config,
    settings: Sequence[Mapping[str, float]],
    num_seeds: int,
    episodes: int,
    *,
    algorithm: Any = None,
    progress: bool = False,
    devices: Sequence[Any] | None = None,
) -> EvaluatedSweep:
    r"""What ``jaxpg sweep`` runs: every setting with seeds ``0 .. S - 1``, in
    compiled chunks of updates over all devices and processes (a progress
    bar between chunks: :func:`jaxpg.drivers.members.train_members`), then
    every final policy evaluated on ``episodes`` episodes with the keys
    ``jaxpg train`` evaluates its seeds with
    (:func:`jaxpg.drivers.evaluation.eval_keys`, round 0; sampled actions).

    Setting ``k``, seed ``i`` is ``make_train(cfg.replace(**settings[k]))(
    jax.random.key(i))``, bit for bit the one-program run. With several
    processes call it on every process with the same arguments.

    Args:
      cfg: the base configuration; each setting replaces its fields (the
        :data:`SWEEPABLE` ones).
      settings: ``K`` settings, e.g. from :func:`grid_settings`.
      num_seeds: ``S >= 1``.
      episodes: ``E >= 1`` evaluation episodes per policy.
      algorithm: your algorithm, ``algorithm(cfg, parts) -> Algorithm`` (see
        :func:`jaxpg.make_algorithm`); its ``lr`` setting reaches it through
        jaxpg's default optimizer.
      progress: a ``compiling...`` line, then a bar over env steps (process 0).
      devices: default: all devices of all processes.

    Raises:
      ValueError: a setting that cannot be swept or that the config rejects,
        or an invalid count (the message names it).
    """
    from jaxpg.drivers.evaluation import eval_keys
    from jaxpg.drivers.members import train_members
    from jaxpg.drivers.train import evaluate, make_algorithm, policy_params

    settings = _explicit_settings(settings)
    num_seeds = positive_int("num_seeds", num_seeds)
    episodes = positive_int("episodes", episodes)
    seeds, member_hp = _members(cfg, settings, num_seeds, 0)

    def finish(seed: jax.Array, state: Any) -> jax.Array:
        key = eval_keys(seed[None])[0]
        return evaluate(cfg, policy_params(cfg, state), key, episodes)

    trained = train_members(
        cfg,
        make_algorithm(cfg, algorithm=algorithm),
        seeds,
        member_hp,
        finish=finish,
        progress=progress,
        devices=devices,
    )
    k = len(settings)

    def split(x: Any) -> np.ndarray:
        x = np.asarray(x)
        return x.reshape((k, num_seeds, *x.shape[1:]))

    return EvaluatedSweep(
        split(trained.final),
        split(trained.metrics["episode_return"]),
        split(trained.metrics["env_steps"]),
        trained.compile_s,
        trained.run_s,
    )


def _members(
    cfg: Config, settings: list[dict[str, float]], num_seeds: int, first_seed: int
) -> tuple[np.ndarray, Any]:
    """``[K * S]`` seeds and hyperparameters, setting-major; each setting is
    validated as a whole config (the config's own errors)."""
    hparams = [cfg.replace(**s).hyperparams() for s in settings]
    member_hp = jax.tree.map(
        lambda *xs: np.repeat(np.stack([np.asarray(x) for x in xs]), num_seeds, 0),
        *hparams,
    )
    seeds = np.tile(np.arange(first_seed, first_seed + num_seeds), len(settings))
    return seeds, member_hp


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name}={value!r} is invalid: must be a number")
    return float(value)


def _parse_range(name: str, spec: Any) -> tuple[float, float, str]:
    allowed = "must be (low, high) (log-uniform) or (low, high, 'log' | 'linear')"
    if (
        not isinstance(spec, Sequence)
        or isinstance(spec, str)
        or len(spec) not in (2, 3)
    ):
        raise ValueError(f"ranges[{name!r}]={spec!r} is invalid: {allowed}")
    low, high = _number(name, spec[0]), _number(name, spec[1])
    scale = spec[2] if len(spec) == 3 else "log"
    if scale not in ("log", "linear"):
        raise ValueError(f"ranges[{name!r}]={spec!r} is invalid: {allowed}")
    if not low <= high or (scale == "log" and not low > 0):
        raise ValueError(
            f"ranges[{name!r}]={spec!r} is invalid: needs low <= high"
            + (" and low > 0 for a log-uniform range" if scale == "log" else "")
        )
    return low, high, scale


def _explicit_settings(grid: Any) -> list[dict[str, float]]:
    if isinstance(grid, str) or not isinstance(grid, Sequence) or not grid:
        raise ValueError(
            f"grid={grid!r} is invalid: must be a dict {{field: [values]}} or a "
            "non-empty list of settings {field: value}"
        )
    settings = []
    for setting in grid:
        if not isinstance(setting, Mapping):
            raise ValueError(
                f"setting {setting!r} is invalid: must be a dict {{field: value}}"
            )
        for name in setting:
            _check_field(name, "setting field")
        settings.append({name: _number(name, v) for name, v in setting.items()})
    return settings
