r"""TensorBoard event files for a multi-seed run, written from the host.

:class:`TensorBoardLogger` is a :func:`jaxpg.drivers.runner.run` callback: after each
chunk it writes every finite per-update metric of every seed as a scalar
``train/<metric>`` at ``global_step`` = that seed's cumulative env steps, into
one event-file run per seed (``<dir>/seed_<i>``), so TensorBoard overlays the
seeds. Nothing runs inside the compiled program. After a resume, updates
between the last checkpoint and the interruption are written a second time
(with the same values).

Needs ``tensorboardX`` (the ``tensorboard`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger:
    """Per-seed TensorBoard writers; call it with a
    :class:`jaxpg.drivers.runner.ChunkInfo`.

    Args:
      directory: where the ``seed_<i>`` runs go.
      num_seeds: ``S``.
      first_seed: the seed number of the first run.

    Raises:
      ImportError: tensorboardX is not installed (names the extra).
    """

    def __init__(self, directory: str | os.PathLike, num_seeds: int, first_seed: int):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "--tensorboard needs tensorboardX: pip install 'jaxpg[tensorboard]'"
            ) from e
        self._make = SummaryWriter
        self._logdirs = [
            str(Path(directory) / f"seed_{first_seed + i}") for i in range(num_seeds)
        ]
        # Made at the first chunk: the run directory must still be empty (or
        # hold the run) when the runner checks it before training.
        self.writers: list = []

    def __call__(self, info) -> None:
        if not self.writers:
            self.writers = [self._make(logdir=d) for d in self._logdirs]
        steps = np.asarray(info.metrics["env_steps"], dtype=np.int64)
        for name, values in info.metrics.items():
            if name == "env_steps":
                continue
            values = np.asarray(values, dtype=np.float64)
            for s, writer in enumerate(self.writers):
                for u in np.flatnonzero(np.isfinite(values[s])):
                    writer.add_scalar(
                        f"train/{name}", values[s, u], global_step=int(steps[s, u])
                    )
        for writer in self.writers:
            writer.flush()
        return None

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
