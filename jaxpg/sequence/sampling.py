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

Randomness: step ``t`` draws with ``jax.random.categorical`` and the key
``jax.random.split(key, R)[t]``; the same key gives the same responses
(bit-identical on one machine).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.kernels.batching import batched_like
from jaxpg.sequence import checks
from jaxpg.sequence.protocol import SequenceModel, as_model, causal

Array = jax.Array
# A model argument: any SequenceModel, or a TransformerConfig (jaxpg's own).
ModelLike = Any


class Samples(NamedTuple):
    """Sampled responses (see the module docstring for the layout)."""

    responses: Array  # [N, R] int32
    mask: Array  # [N, R] float32, 1 up to and including EOS
    log_probs: Array  # [N, R] float32, log mu(token), 0 where mask is 0


def sampling_log_probs(
    logits: Array, temperature: Array | float = 1.0, top_k: int | None = None
) -> Array:
    r"""``log mu`` of the module docstring for ``logits [..., V]``: ``[..., V]``.
    ``top_k`` keeps exactly ``top_k`` tokens (of equal logits, the lower ids)."""
    logits = logits / temperature
    if top_k is not None:
        kept = jax.lax.top_k(logits, top_k)[1]  # [..., k] ids
        ids = jnp.arange(logits.shape[-1]).reshape((1,) * kept.ndim + (-1,))
        keep = jnp.any(kept[..., None] == ids, axis=-2)
        logits = jnp.where(keep, logits, -jnp.inf)
    return jax.nn.log_softmax(logits, axis=-1)


def _check(cfg: SequenceModel, prompts: Array, max_new_tokens: int, top_k, temperature):
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
    if isinstance(temperature, int | float):  # a traced one is the caller's
        checks.number("temperature", temperature, 0.0, low_open=True)


def _step_outputs(noise, logits, done, eos_id, pad_id, temperature, top_k):
    # ``argmax(noise + log mu)`` with ``noise = jax.random.gumbel(key, [N, V])``
    # is ``jax.random.categorical(key, log mu)`` bit for bit: the noise of all
    # steps is drawn up front in one batched call (:func:`_gumbel_noise`).
    logp_all = sampling_log_probs(logits, temperature, top_k)
    token = jnp.argmax(noise + logp_all, axis=-1).astype(jnp.int32)
    token = jnp.where(done, pad_id, token)
    logp = _pick(logp_all, token)
    logp = jnp.where(done, 0.0, logp)
    mask = 1.0 - done.astype(jnp.float32)
    done = done | (token == eos_id)
    return token, mask, logp, done


def _gumbel_noise(key: Array, steps: int, n: int, vocab: int) -> Array:
    """``[steps, N, V]``: row ``t`` is ``jax.random.gumbel(split(key, steps)[t],
    (N, V))``, the noise ``jax.random.categorical`` draws with that key."""
    keys = jax.random.split(key, steps)
    return jax.vmap(lambda k: jax.random.gumbel(k, (n, vocab)))(keys)


def _pick(values: Array, index: Array) -> Array:
    """``values[..., index]`` per row (``[..., V]``, ``[...]`` -> ``[...]``) as a
    masked sum: elementwise forward and backward (no gather/scatter kernels)."""
    vocab = jax.lax.broadcasted_iota(index.dtype, values.shape, values.ndim - 1)
    hit = index[..., None] == vocab
    return jnp.sum(jnp.where(hit, values, 0.0), axis=-1)


def _prefill(
    params: Any, cfg: SequenceModel, prompts: Array, group_size: int, length: int
) -> tuple[Array, Any]:
    """Last-position logits ``[N, V]`` and a cache of ``length`` positions
    holding the prompts' keys/values, computed once per group of
    ``group_size`` rows that share a prompt, then repeated to ``N`` rows."""
    unique = prompts[::group_size]
    cache = cfg.init_cache(unique.shape[0], length)
    logits, cache = cfg.apply_cached(params, unique, 0, cache)
    last = logits[:, -1]
    if group_size > 1:
        last = jnp.repeat(last, group_size, axis=0)
        axis = cfg.cache_batch_axis
        cache = jax.tree.map(lambda c: jnp.repeat(c, group_size, axis=axis), cache)
    return last, cache


def _check_groups(n: int, group_size: int) -> None:
    if not isinstance(group_size, int) or group_size < 1 or n % group_size:
        raise ValueError(
            f"group_size={group_size!r} must be an int >= 1 dividing the {n} rows"
        )


def packed_layout(prompt_len: int, response_len: int, group_size: int):
    """Static layout of one packed row: a prompt, then ``group_size``
    continuations of ``response_len`` tokens, each attending to the prompt
    and to itself only.

    Returns ``(positions [L], mask [L, L])`` numpy arrays for
    a model's ``apply``, ``L = prompt_len + group_size * response_len``.
    """
    lp, r, g = prompt_len, response_len, group_size
    positions = np.concatenate([np.arange(lp), np.tile(lp + np.arange(r), g)])
    segment = np.concatenate([np.zeros(lp, int), np.repeat(np.arange(1, g + 1), r)])
    order = np.arange(len(positions))
    mask = (order[None, :] <= order[:, None]) & (
        (segment[None, :] == 0) | (segment[None, :] == segment[:, None])
    )
    return positions, mask


def sample(
    key: Array,
    params: Any,
    cfg: ModelLike,
    prompts: Array,
    max_new_tokens: int,
    *,
    eos_id: int,
    pad_id: int,
    temperature: Array | float = 1.0,
    top_k: int | None = None,
    group_size: int = 1,
) -> Samples:
    """Sample ``max_new_tokens`` tokens per prompt with a KV cache.

    One prefill pass over the prompts, then one single-token pass per step
    inside a ``lax.scan`` (compile time does not grow with ``R``); the last
    token needs no pass after it. A model without a cache is sampled by
    :func:`sample_without_cache` (the same draws, ``R`` full passes).

    Args:
      key: PRNG key.
      params: token policy parameters.
      cfg: the model: a :class:`~jaxpg.sequence.protocol.SequenceModel` or a
        ``TransformerConfig`` (jaxpg's transformer).
      prompts: ``[N, Lp]`` int32.
      max_new_tokens: ``R`` (static).
      eos_id, pad_id: token ids (static).
      temperature: ``T > 0``, finite (may be traced; a Python number is
        checked: ValueError).
      top_k: keep only the ``top_k`` largest logits (static), or ``None``.
      group_size: ``G`` (static): rows ``g G .. g G + G - 1`` share a prompt
        (the layout of :func:`.rl.rollout`), whose prefill then runs once per
        group. The draws are those of ``group_size=1``.

    Returns:
      :class:`Samples` with ``[N, R]`` arrays.
    """
    cfg = as_model(cfg)
    _check(cfg, prompts, max_new_tokens, top_k, temperature)
    n, prompt_len = prompts.shape
    _check_groups(n, group_size)
    if not cfg.has_cache:
        return sample_without_cache(
            key, params, cfg, prompts, max_new_tokens, eos_id=eos_id,
            pad_id=pad_id, temperature=temperature, top_k=top_k,
        )  # fmt: skip
    last, cache = _prefill(
        params, cfg, prompts, group_size, prompt_len + max_new_tokens - 1
    )
    noise = _gumbel_noise(key, max_new_tokens, n, cfg.vocab_size)

    def outputs(logits, done, noise_t):
        return _step_outputs(noise_t, logits, done, eos_id, pad_id, temperature, top_k)

    def step(carry, xs):
        last_logits, cache, done = carry
        t, noise_t = xs
        token, mask, logp, done = outputs(last_logits, done, noise_t)
        next_logits, cache = cfg.apply_cached(
            params, token[:, None], prompt_len + t, cache
        )
        return (next_logits[:, 0], cache, done), (token, mask, logp)

    # Batched like the draws from the start: vmap batches the step once.
    done = batched_like(jnp.zeros((n,), bool), noise)
    (last, _, done), (tokens, mask, logp) = jax.lax.scan(
        step, (last, cache, done), (jnp.arange(max_new_tokens - 1), noise[:-1])
    )
    final = outputs(last, done, noise[-1])[:3]
    tokens, mask, logp = (
        jnp.concatenate([seq, out[None]])
        for seq, out in zip((tokens, mask, logp), final, strict=True)
    )
    return Samples(tokens.T, mask.T, logp.T)


def sample_without_cache(
    key: Array,
    params: Any,
    cfg: ModelLike,
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
    ``R`` times the work: how :func:`sample` runs a model without a cache, and
    the reference for tests and the throughput benchmark."""
    cfg = as_model(cfg)
    _check(cfg, prompts, max_new_tokens, top_k, temperature)
    n, prompt_len = prompts.shape
    positions, causal_mask = causal(prompt_len + max_new_tokens)
    noise = _gumbel_noise(key, max_new_tokens, n, cfg.vocab_size)

    def step(carry, xs):
        responses, done = carry
        noise_t, t = xs
        tokens = jnp.concatenate([prompts, responses], axis=1)
        logits = cfg.apply(params, tokens, positions, causal_mask)
        last = jax.lax.dynamic_index_in_dim(
            logits, prompt_len + t - 1, axis=1, keepdims=False
        )
        token, mask, logp, done = _step_outputs(
            noise_t, last, done, eos_id, pad_id, temperature, top_k
        )
        responses = jax.lax.dynamic_update_index_in_dim(responses, token, t, axis=1)
        return (responses, done), (token, mask, logp)

    init = batched_like(
        (jnp.full((n, max_new_tokens), pad_id, jnp.int32), jnp.zeros((n,), bool)),
        noise,
    )
    _, (tokens, mask, logp) = jax.lax.scan(
        step, init, (noise, jnp.arange(max_new_tokens))
    )
    return Samples(tokens.T, mask.T, logp.T)


def response_logits(
    params: Any,
    cfg: ModelLike,
    prompts: Array,
    responses: Array,
    group_size: int = 1,
) -> Array:
    """Teacher-forced logits that predict each response token.

    Args:
      params, cfg: the model's parameters and the model (as :func:`sample`).
      prompts: ``[N, Lp]`` int32.
      responses: ``[N, R]`` int32.
      group_size: ``G`` (static): rows ``g G .. g G + G - 1`` share a prompt
        (the layout of :func:`.rl.rollout`). The pass then runs on ``N / G``
        packed rows, the prompt once followed by its ``G`` responses
        (:func:`packed_layout`): the same logits up to float rounding, the
        prompt's work done once per group.

    Returns:
      ``[N, R, V]``: entry ``[:, t]`` is the distribution of ``responses[:, t]``
      given the prompt and ``responses[:, :t]``.
    """
    if prompts.shape[0] != responses.shape[0]:
        raise ValueError(
            f"prompts {prompts.shape} and responses {responses.shape} differ in N"
        )
    cfg = as_model(cfg)
    n, lp = prompts.shape
    _check_groups(n, group_size)
    if group_size == 1:
        tokens = jnp.concatenate([prompts, responses[:, :-1]], axis=1)
        if tokens.shape[1] > cfg.max_len:
            raise ValueError(
                f"prompt length {lp} + response length {responses.shape[1]} - 1 "
                f"exceeds the model's max_len={cfg.max_len}"
            )
        logits = cfg.apply(params, tokens, *causal(tokens.shape[1]))
        return logits[:, lp - 1 :]
    r, g = responses.shape[1], group_size
    if lp + r - 1 > cfg.max_len:
        raise ValueError(
            f"prompt length {lp} + response length {r} - 1 exceeds the model's "
            f"max_len={cfg.max_len}"
        )
    positions, mask = packed_layout(lp, r - 1, g)
    rows = jnp.concatenate(
        [prompts[::g], responses[:, :-1].reshape(n // g, g * (r - 1))], axis=1
    )
    logits = cfg.apply(params, rows, positions, mask)
    v = logits.shape[-1]
    first = jnp.broadcast_to(logits[:, None, lp - 1 : lp], (n // g, g, 1, v))
    rest = logits[:, lp:].reshape(n // g, g, r - 1, v)
    return jnp.concatenate([first, rest], axis=2).reshape(n, r, v)


def token_log_probs(logits: Array, tokens: Array) -> Array:
    r""":math:`\log\pi(y_t \mid \cdot)` of ``tokens [N, R]`` under ``logits``.

    ``logits [N, R, V]``, ``tokens [N, R]`` int32 -> ``[N, R]``.
    """
    return _pick(jax.nn.log_softmax(logits, axis=-1), tokens)
