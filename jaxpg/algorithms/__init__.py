"""Algorithms as pure ``(init, update)`` pairs built from the kernels."""

from jaxpg.algorithms.base import Algorithm, TrainState
from jaxpg.algorithms.reinforce import make_reinforce

__all__ = ["Algorithm", "TrainState", "make_reinforce"]
