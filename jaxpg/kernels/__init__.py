"""Kernels: pure array functions (no state, no randomness, no environment).

:mod:`~jaxpg.kernels.returns` (discounted returns, GAE),
:mod:`~jaxpg.kernels.advantages` (baselines), :mod:`~jaxpg.kernels.losses`,
:mod:`~jaxpg.kernels.distributions`, :mod:`~jaxpg.kernels.normalise` (running
statistics), :mod:`~jaxpg.kernels.batching` (vmap-aware loops) and
:mod:`~jaxpg.kernels.keys` (typed PRNG keys as raw data and back).
"""
