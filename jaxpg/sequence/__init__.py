r"""Policy gradients for token policies: the LLM correspondence of REINFORCE.

A small decoder-only transformer samples whole responses to prompts, a
verifiable reward scores them, and ``-log pi(response | prompt) * advantage``
is minimised, with group baselines (RLOO, GRPO, Dr. GRPO, REINFORCE++),
PPO-style clipping and a KL penalty to a frozen SFT reference.

Modules: :mod:`.protocol` (the model protocol: any model with parameters, a
forward pass and optionally a KV cache; NNX and linen adapters),
:mod:`.model` (jaxpg's transformer, KV cache), :mod:`.sampling` (sampler,
teacher-forced log-probs), :mod:`.tasks` (sort / add / proxy-reward tasks),
:mod:`.data` (prompts and columns from a user's dataset, a character
tokenizer), :mod:`.host_reward` (Python reward functions through
``jax.pure_callback``),
:mod:`.estimators` (advantage, aggregation and KL kernels), :mod:`.sft` (warm
start, versioned reference), :mod:`.reward_model` (Bradley–Terry reward model
from preference pairs, RL against it), :mod:`.dpo` (DPO on the same pairs),
:mod:`.rl` (update, train, seeds, hacking flag), :mod:`.seeds` (many
seeds in compiled chunks), :mod:`.runs` (``jaxpg lm``'s run directory),
:mod:`.report` (a run's summary and curves). Shapes: ``P`` prompts, ``G``
samples per prompt, ``N = P G``, ``Lp`` prompt length, ``R`` response
length, ``V`` vocabulary, ``S`` seeds, ``U`` updates.
"""

from jaxpg.sequence.data import CharTokenizer, dataset_task
from jaxpg.sequence.dpo import (
    DPOOutput,
    dpo_loss,
    make_dpo,
    make_dpo_train,
    sequence_log_probs,
)
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
from jaxpg.sequence.host_reward import host_reward
from jaxpg.sequence.model import KVCache, TransformerConfig, apply, init, init_cache
from jaxpg.sequence.protocol import (
    SequenceModel,
    as_model,
    from_linen,
    from_nnx,
    transformer,
)
from jaxpg.sequence.reward_model import (
    PreferencePairs,
    bradley_terry_loss,
    learned_reward_task,
    load_reward_model,
    make_reward_model_train,
    preference_accuracy,
    preference_pairs,
    reward_scores,
    save_reward_model,
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
    "CharTokenizer",
    "DPOOutput",
    "Hyperparams",
    "KVCache",
    "PreferencePairs",
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
    "bradley_terry_loss",
    "data_parallel",
    "dataset_task",
    "dpo_loss",
    "entropy",
    "evaluate",
    "exact_kl",
    "from_linen",
    "from_nnx",
    "group_advantages",
    "host_reward",
    "init",
    "init_cache",
    "kl_shaped_rewards",
    "kl_tokens",
    "learned_reward_task",
    "load_reference",
    "load_reward_model",
    "loss_fn",
    "make_batch",
    "make_dpo",
    "make_dpo_train",
    "make_reward_model_train",
    "make_rl",
    "make_rl_train",
    "make_sft",
    "make_task",
    "packed_layout",
    "params_hash",
    "preference_accuracy",
    "preference_pairs",
    "response_logits",
    "reward_hacking_flag",
    "reward_scores",
    "rollout",
    "run_updates",
    "sample",
    "sample_without_cache",
    "save_reference",
    "save_reward_model",
    "score",
    "sequence_log_probs",
    "surrogate_terms",
    "token_log_probs",
    "train_seeds",
    "transformer",
    "with_reward",
]
