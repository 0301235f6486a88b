"""Kernels: pure array functions (no state, no randomness, no environment).

:mod:`~jaxpg.kernels.returns` (discounted returns, GAE),
:mod:`~jaxpg.kernels.advantages` (baselines), :mod:`~jaxpg.kernels.losses`,
:mod:`~jaxpg.kernels.distributions`, :mod:`~jaxpg.kernels.normalise` (running
statistics) and :mod:`~jaxpg.kernels.batching` (vmap-aware loops).
"""
