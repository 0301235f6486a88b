"""JAX's backend, as ``import jaxpg`` leaves it: as it found it.

Importing gymnax (which jaxpg imports) builds a few arrays, and with them
starts JAX's backend. A backend started by jaxpg's import, and not before, is
dropped again at its end (:func:`release_if_started_here`), so that after
``import jaxpg`` JAX can still be set up as before any computation:
``jax.config.update("jax_num_cpu_devices", n)``,
``jax.distributed.initialize(...)``. The arrays made so far stay usable (JAX
moves them to the new backend's devices when a computation uses them).
"""

from __future__ import annotations

from jax._src import xla_bridge

UP_BEFORE = xla_bridge.backends_are_initialized()


def release_if_started_here() -> None:
    """Drop the backend if it started since this module's import."""
    if not UP_BEFORE and xla_bridge.backends_are_initialized():
        import jax.extend.backend

        jax.extend.backend.clear_backends()
