r"""Evaluation of many seeds, as ``jaxpg train``, ``jaxpg eval`` and
``jaxpg sweep`` do it, and the policies saved in a run directory.

Every command evaluates seed ``i`` of key round ``r`` (round 0 is training's
own evaluation, ``jaxpg eval`` defaults to round 1) with the key
``fold_in(fold_in(key(EVAL_SEED), r), i)``: independent of training's keys,
and the same for the same seed wherever it runs.

Shapes: ``S`` seeds, ``E`` episodes.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxpg.config import Config
from jaxpg.drivers import executables
from jaxpg.drivers.imports import load_object
from jaxpg.drivers.train import evaluate, make_algorithm, policy_params, seed_keys
from jaxpg.experiment import integrity, rundir
from jaxpg.networks import with_obs_norm

Array = jax.Array

__all__ = [
    "EVAL_SEED",
    "eval_keys",
    "evaluate_seeds",
    "load_policy",
    "policy_target",
    "recorded_algorithm",
]

EVAL_SEED = 2_024_999


def eval_keys(seeds: Any, round_: int = 0) -> Array:
    """``[S]`` evaluation keys ``fold_in(fold_in(key(EVAL_SEED), round_), seed)``
    of the seeds ``[S]`` (ints or a traced int array)."""
    base = jax.random.fold_in(jax.random.key(EVAL_SEED), round_)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jax.numpy.asarray(seeds))


def evaluate_seeds(
    cfg: Config,
    params: Any,
    num_seeds: int,
    first_seed: int,
    episodes: int,
    deterministic: bool,
    round_: int,
    parts: dict[str, Any] | None = None,
) -> np.ndarray:
    """``[S, E]`` returns of every seed's policy (``params`` as training
    returns them, with a leading ``[S]``), keys
    ``fold_in(fold_in(key(EVAL_SEED), round_), seed)``. ``parts``: keywords
    of :func:`jaxpg.evaluate` (``env``, ``env_params``, ``policy_network``,
    ``policy_obs``, ``action_mask_fn``) for a run trained with them."""
    keys = eval_keys(np.arange(first_seed, first_seed + num_seeds), round_)
    given = {k: v for k, v in (parts or {}).items() if v is not None}
    if given:
        fn = jax.jit(
            jax.vmap(
                lambda p, k: evaluate(
                    cfg, p, k, episodes, deterministic=deterministic, **given
                )
            )
        )
    elif executables.directory() is None or ":" in cfg.env:
        # Programs not kept on disk (or a user's environment module).
        fn = _eval_fn(cfg, episodes, deterministic)
    else:
        jitted = _eval_fn(cfg, episodes, deterministic)
        signature = jax.tree.map(
            lambda x: (np.shape(x), str(x.dtype), str(getattr(x, "sharding", None))),
            (params, keys),
        )
        description = executables.describe(
            repr(cfg),
            program="evaluate",
            episodes=episodes,
            deterministic=deterministic,
            arguments=str(signature),
        )
        fn = executables.load_or_compile(
            lambda: jitted.lower(params, keys), description=description
        )
    return np.asarray(fn(params, keys), dtype=np.float64)


@functools.lru_cache(maxsize=4)
def _eval_fn(cfg: Config, episodes: int, deterministic: bool):
    """The jitted ``[S]`` evaluation (kept: evaluating again does not
    compile again)."""
    return jax.jit(
        jax.vmap(
            lambda p, k: evaluate(cfg, p, k, episodes, deterministic=deterministic)
        )
    )


def recorded_algorithm(record: dict) -> str | None:
    """The import path of the user's algorithm a run directory's record names
    (``custom.algorithm`` of the form ``module:function``), else ``None``."""
    described = (record.get("custom") or {}).get("algorithm")
    if described and ":" in described and "(" not in described:
        return described
    return None


def policy_target(
    cfg: Config,
    num_seeds: int,
    first_seed: int,
    algorithm: Any = None,
    parts: dict[str, Any] | None = None,
) -> Any:
    """The abstract ``[S]`` train state (shapes, dtypes, shardings) of the run
    (of the user's ``algorithm`` when given, and of the other ``parts``:
    keywords of :func:`jaxpg.make_algorithm`)."""
    parts = {k: v for k, v in (parts or {}).items() if v is not None}
    algo = make_algorithm(cfg, algorithm=algorithm, **parts)
    keys = seed_keys(num_seeds, first_seed)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        jax.eval_shape(jax.vmap(algo.init), keys),
    )


def load_policy(
    directory: str | Path,
    *,
    env: Any = None,
    env_params: Any = None,
    policy_network: Any = None,
    critic_network: Any = None,
    optimizer: Any = None,
    algorithm: Any = None,
    policy_obs: Any = None,
    critic_obs: Any = None,
    action_mask_fn: Any = None,
) -> tuple[Config, dict, Any, str]:
    """``(config, record, [S] policy params, what)`` of a run directory: the
    final parameters, or for an unfinished run its newest valid checkpoint.
    The parameters are those training returns (carrying the observation
    statistics when ``cfg.normalise_obs``): ``jaxpg.evaluate(cfg, params_i,
    key)`` evaluates seed ``i``'s policy. Their files are checked against
    the run's ``checksums.json`` first (a run without one, from an older
    jaxpg, is read with a warning); final parameters without the observation
    statistics they need fall back to the newest checkpoint, with a warning.

    A run trained with parts given as Python objects (``env=``,
    ``policy_network=``, ...: what :func:`jaxpg.drivers.runner.run` records under
    ``custom``) needs the same objects again: ``config.json`` names them
    but cannot rebuild them. Each is checked against the record (a flax
    module by its fields, an optimizer by its hyperparameters, ``env_params``
    by its values). An algorithm recorded by import path (``jaxpg train
    --algorithm``) is imported again.

    Raises:
      ValueError: not a run directory; a recorded part not given, or a part
        that differs from the record (named); nothing saved; or a saved file
        that is damaged (named).
    """
    from jaxpg.drivers.runstate import describe_part, fingerprint
    from jaxpg.experiment.checkpoint import (
        CheckpointError,
        restore_latest,
        restore_tree,
    )

    cfg, record = rundir.load_run(directory)
    recorded = {k: v for k, v in (record.get("custom") or {}).items() if v}
    given = {
        name: value
        for name, value in (
            ("env", env),
            ("env_params", env_params),
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
    path = recorded_algorithm(record)
    if path is not None and "algorithm" not in given:  # rebuilt by import path
        given["algorithm"] = load_object(path, "the run's algorithm")
    missing = [k for k in recorded if k not in given]
    if missing:
        raise ValueError(
            f"{directory} was trained with custom parts ({', '.join(missing)}), "
            "which config.json names but cannot rebuild: load it from Python, "
            f"passing the same objects: jaxpg.load_policy(DIR, {missing[0]}=...)"
        )
    for name, value in given.items():
        now = fingerprint(value) if name == "env_params" else describe_part(name, value)
        if not rundir.same_part(recorded.get(name), now):
            was = recorded.get(name) or "the default"
            raise ValueError(
                f"{name}={now!r} is not the part {directory} was trained with ({was!r})"
            )
    algorithm = given.pop("algorithm", None)
    target = policy_target(
        cfg, record["num_seeds"], record["first_seed"], algorithm, given
    )
    params_dir = Path(directory) / rundir.PARAMS
    obs_dir = Path(directory) / rundir.OBS_NORM
    final = params_dir.is_dir()
    if final and cfg.normalise_obs and not obs_dir.is_dir():
        warnings.warn(
            f"{obs_dir} is missing (the observation statistics of the final "
            "parameters): evaluating the newest checkpoint instead",
            stacklevel=2,
        )
        final = False
    if final:
        bad = integrity.problems(directory, rundir.PARAMS, rundir.OBS_NORM)
        if bad is None:
            warnings.warn(
                f"{directory} has no {integrity.CHECKSUMS} (written by an older "
                "jaxpg): its parameters are not verified",
                stacklevel=2,
            )
        elif bad:
            raise ValueError(
                "the saved policy is damaged: " + "; ".join(m for _, m in bad)
            )
        try:
            params = restore_tree(params_dir, target.params["policy"])
            obs_norm = None
            if cfg.normalise_obs:
                obs_norm = restore_tree(obs_dir, target.obs_norm)
        except Exception as e:  # orbax: unreadable or of another run
            raise ValueError(
                f"{params_dir} (or {obs_dir.name}/) cannot be read: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None
        return cfg, record, with_obs_norm(params, obs_norm), "final parameters"
    try:
        step, state = restore_latest(Path(directory) / rundir.CHECKPOINTS, target)
    except CheckpointError as e:
        raise ValueError(f"{directory}: no final parameters and {e}") from None
    return cfg, record, policy_params(cfg, state), f"checkpoint at update {step}"
