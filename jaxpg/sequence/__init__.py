r"""Policy gradients for token policies: the LLM correspondence of REINFORCE.

A small decoder-only transformer samples whole responses to prompts, a
verifiable reward scores them, and ``-log pi(response | prompt) * advantage``
is minimised, with group baselines (RLOO, GRPO, Dr. GRPO, REINFORCE++),
PPO-style clipping and a KL penalty to a frozen SFT reference.

Modules: :mod:`.protocol` (the model protocol: any model with parameters, a
forward pass and optionally a KV cache; NNX and linen adapters),
:mod:`.model` (jaxpg's transformer, KV cache), :mod:`.sampling` (sampler,
teacher-forced log-probs), :mod:`.tasks` (sort / add / proxy-reward tasks),
:mod:`.estimators` (advantage, aggregation and KL kernels), :mod:`.sft` (warm
start, versioned reference), :mod:`.rl` (update, train, seeds, hacking flag),
:mod:`.cli` (``jaxpg lm``). Shapes: ``P`` prompts, ``G`` samples per prompt,
``N = P G``, ``Lp`` prompt length, ``R`` response length, ``V`` vocabulary,
``S`` seeds, ``U`` updates.
"""

from jaxpg.sequence.estimators import (
    ADVANTAGES,
    AGGREGATIONS,
    KL_ESTIMATORS,
    aggregate,
    entropy,
    exact_kl,
    group_advantages,
    kl_shaped_rewards,
    kl_tokens,
    surrogate_terms,
)
from jaxpg.sequence.model import KVCache, TransformerConfig, apply, init, init_cache
from jaxpg.sequence.protocol import (
    SequenceModel,
    as_model,
    from_linen,
    from_nnx,
    transformer,
)
from jaxpg.sequence.rl import (
    KL_PLACEMENTS,
    RL,
    Batch,
    Hyperparams,
    RLConfig,
    RLOutput,
    RLState,
    Rollout,
    data_parallel,
    evaluate,
    loss_fn,
    make_batch,
    make_rl,
    make_rl_train,
    reward_hacking_flag,
    rollout,
    run_updates,
    score,
    train_seeds,
)
from jaxpg.sequence.sampling import (
    Samples,
    packed_layout,
    response_logits,
    sample,
    sample_without_cache,
    token_log_probs,
)
from jaxpg.sequence.sft import (
    SFTOutput,
    load_reference,
    make_sft,
    params_hash,
    save_reference,
)
from jaxpg.sequence.tasks import TASKS, Task, make_task, with_reward

__all__ = [
    "ADVANTAGES",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "KL_PLACEMENTS",
    "RL",
    "TASKS",
    "Batch",
    "Hyperparams",
    "KVCache",
    "RLConfig",
    "RLOutput",
    "RLState",
    "Rollout",
    "SFTOutput",
    "Samples",
    "SequenceModel",
    "Task",
    "TransformerConfig",
    "aggregate",
    "apply",
    "as_model",
    "data_parallel",
    "entropy",
    "evaluate",
    "exact_kl",
    "from_linen",
    "from_nnx",
    "group_advantages",
    "init",
    "init_cache",
    "kl_shaped_rewards",
    "kl_tokens",
    "load_reference",
    "loss_fn",
    "make_batch",
    "make_rl",
    "make_rl_train",
    "make_sft",
    "make_task",
    "packed_layout",
    "params_hash",
    "response_logits",
    "reward_hacking_flag",
    "rollout",
    "run_updates",
    "sample",
    "sample_without_cache",
    "save_reference",
    "score",
    "surrogate_terms",
    "token_log_probs",
    "train_seeds",
    "transformer",
    "with_reward",
]
