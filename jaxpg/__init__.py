"""jaxpg: policy-gradient reinforcement learning as pure JAX functions."""

import os as _os

# XLA's multi-threaded Eigen pool on CPU can wedge (every worker idle, the
# caller blocked forever) on vmapped programs with while loops, jaxpg's
# multi-seed training among them. Single-threaded Eigen avoids it at little
# cost for these small matrices. Set before JAX starts its CPU backend; a user
# who sets xla_cpu_multi_thread_eigen in XLA_FLAGS keeps their choice.
if "xla_cpu_multi_thread_eigen" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()

from jaxpg import (
    _backend,  # first: notes whether JAX's backend is up yet
    algorithms,
    envs,
    networks,
    presets,
)
from jaxpg._version import __version__ as __version__
from jaxpg.algorithms import Algorithm, Parts, TrainState
from jaxpg.analysis import stats
from jaxpg.config import Config, Hyperparams
from jaxpg.drivers import parallel
from jaxpg.drivers.evaluation import load_policy
from jaxpg.drivers.sweep import sweep
from jaxpg.drivers.train import (
    TrainOutput,
    evaluate,
    make_algorithm,
    make_parts,
    make_train,
    train_seeds,
)
from jaxpg.kernels.advantages import (
    group_normalised,
    leave_one_out,
    mean_baseline,
    no_baseline,
    standardise,
)
from jaxpg.kernels.distributions import Categorical, DiagGaussian
from jaxpg.kernels.losses import (
    entropy_loss,
    kl_estimate,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from jaxpg.kernels.returns import discounted_returns, generalized_advantage_estimation
from jaxpg.rollout import Transition

_backend.release_if_started_here()

__all__ = [
    "Algorithm",
    "Categorical",
    "Config",
    "DiagGaussian",
    "Hyperparams",
    "Parts",
    "TrainOutput",
    "TrainState",
    "Transition",
    "algorithms",
    "discounted_returns",
    "entropy_loss",
    "envs",
    "evaluate",
    "generalized_advantage_estimation",
    "group_normalised",
    "kl_estimate",
    "leave_one_out",
    "load_policy",
    "make_algorithm",
    "make_parts",
    "make_train",
    "mean_baseline",
    "networks",
    "no_baseline",
    "parallel",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "presets",
    "standardise",
    "stats",
    "sweep",
    "train_seeds",
    "value_loss",
]
