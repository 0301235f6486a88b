r"""Generation with a KV cache, and teacher-forced log-probs of given responses.

Sampling distribution: :math:`\mu(a \mid \cdot) = \mathrm{softmax}(\ell / T)`
restricted to the ``top_k`` largest logits when ``top_k`` is set (the others
get probability 0). With ``T = 1`` and no ``top_k``, :math:`\mu = \pi_\theta`.

Response layout ``[N, R]``: tokens are sampled until ``eos_id`` (included,
it is an action with a log-prob), then ``pad_id``. ``mask`` is 1 on every
sampled token up to and including the first EOS, 0 after. A response that
never emits EOS fills all ``R`` positions (truncated). The gradient never flows
through sampling: policy gradients use :func:`token_log_probs` of the sampled
tokens in one teacher-forced pass.

Randomness: step ``t`` draws with ``jax.random.split(key, R)[t]``; the same
key gives the same responses (bit-identical on one machine).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxpg.sequence import model
from jaxpg.sequence.model import TransformerConfig

Array = jax.Array


class Samples(NamedTuple):
    """Sampled responses (see the module docstring for the layout)."""

    responses: Array  # [N, R] int32
    mask: Array  # [N, R] float32, 1 up to and including EOS
    log_probs: Array  # [N, R] float32, log mu(token), 0 where mask is 0


def sampling_log_probs(
    logits: Array, temperature: Array | float = 1.0, top_k: int | None = None
) -> Array:
    r"""``log mu`` of the module docstring for ``logits [..., V]``: ``[..., V]``."""
    logits = logits / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits >= kth, logits, -jnp.inf)
    return jax.nn.log_softmax(logits, axis=-1)


def _check(cfg: TransformerConfig, prompts: Array, max_new_tokens: int, top_k):
    if prompts.ndim != 2:
        raise ValueError(f"prompts must be [N, Lp], got shape {prompts.shape}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    if prompts.shape[1] + max_new_tokens > cfg.max_len:
        raise ValueError(
            f"prompt length {prompts.shape[1]} + max_new_tokens={max_new_tokens} "
            f"exceeds the model's max_len={cfg.max_len}"
        )
    if top_k is not None and not 1 <= top_k <= cfg.vocab_size:
        raise ValueError(f"top_k={top_k} must be in [1, vocab_size={cfg.vocab_size}]")


def _step_outputs(key, logits, done, eos_id, pad_id, temperature, top_k):
    logp_all = sampling_log_probs(logits, temperature, top_k)
    token = jax.random.categorical(key, logp_all, axis=-1).astype(jnp.int32)
    token = jnp.where(done, pad_id, token)
    logp = jnp.take_along_axis(logp_all, token[:, None], axis=-1)[:, 0]
    logp = jnp.where(done, 0.0, logp)
    mask = 1.0 - done.astype(jnp.float32)
    done = done | (token == eos_id)
    return token, mask, logp, done


def sample(
    key: Array,
    params: dict,
    cfg: TransformerConfig,
    prompts: Array,
    max_new_tokens: int,
    *,
    eos_id: int,
    pad_id: int,
    temperature: Array | float = 1.0,
    top_k: int | None = None,
) -> Samples:
    """Sample ``max_new_tokens`` tokens per prompt with a KV cache.

    One prefill pass over the prompts, then one single-token pass per step
    inside a ``lax.scan`` (compile time does not grow with ``R``).

    Args:
      key: PRNG key.
      params: token policy parameters.
      cfg: static model configuration.
      prompts: ``[N, Lp]`` int32.
      max_new_tokens: ``R`` (static).
      eos_id, pad_id: token ids (static).
      temperature: ``T > 0`` (may be traced).
      top_k: keep only the ``top_k`` largest logits (static), or ``None``.

    Returns:
      :class:`Samples` with ``[N, R]`` arrays.
    """
    _check(cfg, prompts, max_new_tokens, top_k)
    n, prompt_len = prompts.shape
    cache = model.init_cache(cfg, n)
    logits, cache = model.apply(params, cfg, prompts, 0, cache)

    def step(carry, xs):
        last_logits, cache, done = carry
        step_key, t = xs
        token, mask, logp, done = _step_outputs(
            step_key, last_logits, done, eos_id, pad_id, temperature, top_k
        )
        next_logits, cache = model.apply(
            params, cfg, token[:, None], prompt_len + t, cache
        )
        return (next_logits[:, 0], cache, done), (token, mask, logp)

    keys = jax.random.split(key, max_new_tokens)
    done = jnp.zeros((n,), bool)
    _, (tokens, mask, logp) = jax.lax.scan(
        step, (logits[:, -1], cache, done), (keys, jnp.arange(max_new_tokens))
    )
    return Samples(tokens.T, mask.T, logp.T)


def sample_without_cache(
    key: Array,
    params: dict,
    cfg: TransformerConfig,
    prompts: Array,
    max_new_tokens: int,
    *,
    eos_id: int,
    pad_id: int,
    temperature: Array | float = 1.0,
    top_k: int | None = None,
) -> Samples:
    """Reference sampler: the full forward pass over prompt + response so far
    at every step (no cache). Same arguments, keys and result as :func:`sample`;
    ``R`` times the work. For tests and the throughput benchmark."""
    _check(cfg, prompts, max_new_tokens, top_k)
    n, prompt_len = prompts.shape
    keys = jax.random.split(key, max_new_tokens)

    def step(carry, xs):
        responses, done = carry
        step_key, t = xs
        tokens = jnp.concatenate([prompts, responses], axis=1)
        logits, _ = model.apply(params, cfg, tokens)
        last = jax.lax.dynamic_index_in_dim(
            logits, prompt_len + t - 1, axis=1, keepdims=False
        )
        token, mask, logp, done = _step_outputs(
            step_key, last, done, eos_id, pad_id, temperature, top_k
        )
        responses = jax.lax.dynamic_update_index_in_dim(responses, token, t, axis=1)
        return (responses, done), (token, mask, logp)

    init = (jnp.full((n, max_new_tokens), pad_id, jnp.int32), jnp.zeros((n,), bool))
    _, (tokens, mask, logp) = jax.lax.scan(
        step, init, (keys, jnp.arange(max_new_tokens))
    )
    return Samples(tokens.T, mask.T, logp.T)


def response_logits(
    params: dict, cfg: TransformerConfig, prompts: Array, responses: Array
) -> Array:
    """Teacher-forced logits that predict each response token.

    Args:
      prompts: ``[N, Lp]`` int32.
      responses: ``[N, R]`` int32.

    Returns:
      ``[N, R, V]``: entry ``[:, t]`` is the distribution of ``responses[:, t]``
      given the prompt and ``responses[:, :t]``.
    """
    if prompts.shape[0] != responses.shape[0]:
        raise ValueError(
            f"prompts {prompts.shape} and responses {responses.shape} differ in N"
        )
    tokens = jnp.concatenate([prompts, responses[:, :-1]], axis=1)
    logits, _ = model.apply(params, cfg, tokens)
    return logits[:, prompts.shape[1] - 1 :]


def token_log_probs(logits: Array, tokens: Array) -> Array:
    r""":math:`\log\pi(y_t \mid \cdot)` of ``tokens [N, R]`` under ``logits``.

    ``logits [N, R, V]``, ``tokens [N, R]`` int32 -> ``[N, R]``.
    """
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp_all, tokens[..., None], axis=-1)[..., 0]
