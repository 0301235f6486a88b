"""What a chunked run (:func:`jaxpg.drivers.runner.run`) is asked to do,
checked before anything is written, and how its parts are recorded in its
run directory. No computation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxpg.checks import positive_int
from jaxpg.config import Config
from jaxpg.drivers import runstate
from jaxpg.drivers.chunking import timed_plan
from jaxpg.drivers.runstate import describe, describe_part
from jaxpg.drivers.train import make_algorithm

__all__ = ["RunOptions", "check_run_dir_options", "custom_parts"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """:func:`jaxpg.drivers.runner.run`'s keyword arguments; ``parts``: the
    parts given (the keywords of :func:`jaxpg.make_algorithm`). ``callback``
    takes a :class:`jaxpg.drivers.runner.ChunkInfo`."""

    env: Any
    env_params: Any
    parts: dict[str, Any]
    chunk_updates: int | None
    chunk_seconds: float | None
    progress: bool
    first_seed: int
    checkpoint_dir: str | Path | None
    resume: bool
    overwrite: bool
    start_over: bool
    checkpoint_every: int | None
    keep_checkpoints: int
    keep_metrics: bool
    callback: Callable[[Any], bool | None] | None
    eval_episodes: int | None
    source: str

    def checked(self, num_seeds: Any) -> tuple[int, RunOptions]:
        """``(num_seeds, options)`` with the counts as ints, or ValueError
        for a bad count, chunking or run-directory option (the message names
        the argument)."""
        num_seeds = positive_int("num_seeds", num_seeds, 1)
        first_seed = positive_int("first_seed", self.first_seed, 0)
        if first_seed + num_seeds > 2**31:
            raise ValueError(
                f"first_seed={first_seed} + num_seeds={num_seeds} is invalid: "
                "seeds must be below 2**31"
            )
        keep = positive_int("keep_checkpoints", self.keep_checkpoints, 1)
        check_run_dir_options(
            self.checkpoint_dir,
            self.resume,
            self.overwrite,
            self.start_over,
            self.checkpoint_every,
            self.eval_episodes,
        )
        counts = {
            name: positive_int(name, getattr(self, name), 1)
            for name in ("checkpoint_every", "eval_episodes", "chunk_updates")
            if getattr(self, name) is not None
        }
        if self.chunk_seconds is not None:
            timed_plan(1, self.chunk_seconds, 1)  # ValueError naming a bad value
            if self.chunk_updates is not None:
                raise ValueError(
                    f"chunk_updates={self.chunk_updates} and "
                    f"chunk_seconds={self.chunk_seconds}: give one of them (fixed "
                    "chunks, or chunks sized by time)"
                )
        return num_seeds, dataclasses.replace(
            self, first_seed=first_seed, keep_checkpoints=keep, **counts
        )


def custom_parts(
    cfg: Config, opts: RunOptions
) -> tuple[dict[str, Any], Callable[[], Any] | None]:
    """``(record, build)``: how the run's environment and parts are recorded
    in its directory, and ``() -> Algorithm`` of a run with any of them
    (``None``: the config's own, whose programs are kept). The algorithm is
    built once here, before the run directory is written: a setting that
    cannot train fails with its error and leaves nothing behind (about
    0.05 s; the compiled programs build their own)."""
    custom = {
        "env": describe(opts.env),
        **{
            name: describe(opts.parts.get(name))
            for name in ("policy_network", "critic_network", "optimizer", "algorithm")
        },
    }
    # Recorded only when given: older records lack them.
    if opts.env_params is not None:
        custom["env_params"] = runstate.fingerprint(opts.env_params)
    for name in ("policy_obs", "critic_obs", "action_mask_fn"):
        if name in opts.parts:
            custom[name] = describe_part(name, opts.parts[name])
    build = None
    if opts.env is not None or opts.env_params is not None or opts.parts:

        def build() -> Any:
            return make_algorithm(cfg, opts.env, opts.env_params, **opts.parts)

    (build or (lambda: make_algorithm(cfg)))()
    return custom, build


def check_run_dir_options(
    checkpoint_dir: Any,
    resume: bool,
    overwrite: bool,
    start_over: bool,
    checkpoint_every: int | None,
    eval_episodes: int | None,
) -> None:
    """Refuse options that would be ignored: those of a run directory without
    one, ``start_over`` without ``resume``, ``resume`` with ``overwrite``."""
    if checkpoint_dir is not None:
        from jaxpg.experiment.checkpoint import check_path

        check_path(checkpoint_dir)  # before anything is created there
    if checkpoint_dir is None:
        given = [
            f"{name}={value!r}"
            for name, value in (
                ("resume", resume),
                ("overwrite", overwrite),
                ("start_over", start_over),
                ("checkpoint_every", checkpoint_every),
                ("eval_episodes", eval_episodes),
            )
            if value not in (None, False)
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} given without checkpoint_dir: these act on a "
                "run directory (for an evaluation without one, call "
                "jaxpg.evaluate on the result's params)"
            )
    if start_over and not resume:
        raise ValueError("start_over=True needs resume=True")
    if resume and overwrite:
        raise ValueError(
            "resume=True and overwrite=True: give one of them (continue the run "
            "in checkpoint_dir, or replace it)"
        )
