r"""Environments: build them by name, check their API, read their spaces, batch them.

The API jaxpg steps is gymnax ≥ 1.0's: ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated,
info)``, resetting automatically, with ``info["final_observation"]`` the real
``s_{t+1}`` before the reset. ``terminated`` ends the return (nothing to
bootstrap); ``truncated`` only cuts it (a critic bootstraps from
``final_observation``), so the two must never be confused and the final
observation must never silently become the reset one.

:func:`check_env` (called by :func:`env_spec`) traces one reset and one step
with ``jax.eval_shape`` and raises a ``TypeError`` naming the adapter to use for
anything else:

* :class:`LegacyStepAdapter`: gymnax's old five-value step ``(obs, state, reward,
  done, info)`` (e.g. ``gymnax.wrappers.LegacyStepAPIWrapper``), or a six-value
  env without ``final_observation``.
* the suites, each an optional extra and its own module, by name
  (``"SUITE/NAME"``, :func:`make_env`) or from the suite's env object:
  :func:`from_brax` (brax and MuJoCo Playground), :func:`from_jumanji`,
  :func:`from_navix`, :func:`from_xminigrid`, :func:`from_pgx`. Each adapter
  owns its auto-reset, so ``final_observation`` is the real ``s_{t+1}``.
* :class:`RepeatFirst` (``"RepeatFirst-jaxpg"``): jaxpg's own memory task,
  repeat the first observation (:mod:`jaxpg.envs.repeat_first`).
* :func:`make_craftax`: Craftax (``Craftax-Classic-Symbolic-v1``,
  ``Craftax-Symbolic-v1``; ``pip install 'jaxpg[craftax]'``), with death and the
  time limit told apart exactly.

Observations: a ``Discrete(n)`` observation space is one-hot encoded to
``[n]`` float32 by the stepper (the spec reports ``(n,)``); other observations
keep their shape and dtype. An observation may be any pytree of arrays (a
``Dict``/``Tuple`` space, a NamedTuple, a flax struct): the spec keeps its
template (:attr:`EnvSpec.obs_template`; ``obs_shape`` is then ``None``) and
every layer carries it leaf by leaf. A boolean top-level leaf named
``action_mask`` or ``legal_action_mask`` (:data:`MASK_KEYS`, shape ``[A]``)
is the action mask of a discrete policy (illegal actions get probability 0;
a state with no legal action falls back to the unmasked policy), and the
torsos do not see it; :mod:`jaxpg.envs.observations` builds the mask and the
views (``policy_obs`` / ``critic_obs``) a network reads.

Action spaces: ``Discrete``, ``Box``, ``MultiDiscrete`` (:class:`MultiDiscrete`
or any space with ``nvec``) and a ``Tuple`` of ``Discrete``, the last two a
factorised categorical with ``[K]`` int32 actions (a ``Tuple`` env receives a
tuple).
"""

from jaxpg.envs import lazy_imports

lazy_imports.defer()  # before gymnax: its render-only imports load on use

from jaxpg.envs.brax import from_brax  # noqa: E402
from jaxpg.envs.craftax import CRAFTAX_ENVS, CraftaxAdapter, make_craftax  # noqa: E402
from jaxpg.envs.jumanji import from_jumanji  # noqa: E402
from jaxpg.envs.lanes import select_envs  # noqa: E402
from jaxpg.envs.legacy import LegacyStepAdapter  # noqa: E402
from jaxpg.envs.navix import from_navix  # noqa: E402
from jaxpg.envs.pgx import from_pgx  # noqa: E402
from jaxpg.envs.registry import SUITES, is_known_env, known_envs, make_env  # noqa: E402
from jaxpg.envs.repeat_first import RepeatFirst, RepeatFirstParams  # noqa: E402
from jaxpg.envs.spaces import MultiDiscrete  # noqa: E402
from jaxpg.envs.spec import (  # noqa: E402
    MASK_KEYS,
    EnvSpec,
    check_env,
    env_spec,
    is_structured,
    obs_template,
    observation_fn,
    to_env_action,
)
from jaxpg.envs.stepper import EnvStepper, make_stepper  # noqa: E402
from jaxpg.envs.xminigrid import from_xminigrid  # noqa: E402

__all__ = [
    "CRAFTAX_ENVS",
    "MASK_KEYS",
    "SUITES",
    "CraftaxAdapter",
    "EnvSpec",
    "EnvStepper",
    "LegacyStepAdapter",
    "MultiDiscrete",
    "RepeatFirst",
    "RepeatFirstParams",
    "check_env",
    "env_spec",
    "from_brax",
    "from_jumanji",
    "from_navix",
    "from_pgx",
    "from_xminigrid",
    "is_known_env",
    "is_structured",
    "known_envs",
    "make_craftax",
    "make_env",
    "make_stepper",
    "obs_template",
    "observation_fn",
    "select_envs",
    "to_env_action",
]
