"""Token policies written outside jaxpg, for the model protocol's tests: a
bigram table as plain functions (no cache), a one-head attention NNX module
and a linen module in the post-training stacks' calling convention
(``logits, cache = module(tokens, positions=, attention_mask=, cache=)``),
and a task a bigram can solve."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from jaxpg.sequence import SequenceModel, from_linen, from_nnx
from jaxpg.sequence.tasks import EOS, Task, digit


def bigram(vocab_size: int, max_len: int, scale: float = 1.0) -> SequenceModel:
    """``logits[n, i] = table[tokens[n, i]]``: positions and mask play no part
    (a bigram attends to nothing); no cache."""

    def init(key):
        return {"table": scale * jax.random.normal(key, (vocab_size, vocab_size))}

    def apply(params, tokens, positions, mask):
        return params["table"][tokens]

    return SequenceModel("bigram", vocab_size, max_len, init, apply)


class TinyAttention(nnx.Module):
    """Embeddings, one causal attention head over an explicit KV cache
    ``{"k", "v": [N, C, D]}``, a linear head."""

    def __init__(self, vocab_size: int, max_len: int, width: int, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab_size, width, rngs=rngs)
        self.pos = nnx.Embed(max_len, width, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, rngs=rngs)
        self.head = nnx.Linear(width, vocab_size, rngs=rngs)

    def __call__(self, tokens, *, positions, attention_mask, cache=None):
        x = self.embed(tokens) + self.pos(positions)
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        if cache is not None:
            start = positions[0, 0]
            cache = {
                "k": jax.lax.dynamic_update_slice_in_dim(cache["k"], k, start, 1),
                "v": jax.lax.dynamic_update_slice_in_dim(cache["v"], v, start, 1),
            }
            k, v = cache["k"], cache["v"]
        scores = jnp.einsum("nqd,nkd->nqk", q, k) / jnp.sqrt(q.shape[-1])
        scores = jnp.where(attention_mask, scores, -1e30)
        x = x + jnp.einsum("nqk,nkd->nqd", jax.nn.softmax(scores, axis=-1), v)
        return self.head(x), cache


def tiny_nnx(vocab_size: int, max_len: int, width: int = 8, seed: int = 0):
    """:class:`TinyAttention` through :func:`jaxpg.sequence.from_nnx`."""
    module = TinyAttention(vocab_size, max_len, width, nnx.Rngs(seed))

    def init_cache(batch, length):
        zeros = jnp.zeros((batch, length, width), jnp.float32)
        return {"k": zeros, "v": zeros}

    return from_nnx(
        module, vocab_size=vocab_size, max_len=max_len, init_cache=init_cache
    )


class TinyLinen(nn.Module):
    """A bag of embeddings averaged under the attention mask (no cache)."""

    vocab_size: int
    max_len: int
    width: int = 8

    @nn.compact
    def __call__(self, tokens, *, positions, attention_mask, cache=None):
        x = nn.Embed(self.vocab_size, self.width)(tokens)
        x = x + nn.Embed(self.max_len, self.width)(positions)
        weights = attention_mask / jnp.sum(attention_mask, axis=-1, keepdims=True)
        x = x + jnp.einsum("nqk,nkd->nqd", weights, x)
        return nn.Dense(self.vocab_size)(x), cache


def tiny_linen(vocab_size: int, max_len: int) -> SequenceModel:
    return from_linen(
        TinyLinen(vocab_size, max_len), vocab_size=vocab_size, max_len=max_len
    )


def shift_task(max_new_tokens: int = 2) -> Task:
    """Prompt ``[d]`` (a digit 0..4), answer ``[d + 5, EOS]``: what a bigram
    table can learn exactly. Reward: exact match."""

    def sample_prompts(key, n):
        return digit(jax.random.randint(key, (n, 1), 0, 5))

    def answers(prompts):
        eos = jnp.full((prompts.shape[0], 1), EOS, jnp.int32)
        return jnp.concatenate([prompts + 5, eos], axis=1)

    def exact(prompts, responses, mask):
        want = answers(prompts)
        return jnp.all(responses[:, :2] == want, axis=1).astype(jnp.float32)

    return Task(
        "shift", 1, 2, max_new_tokens, sample_prompts, answers, exact, exact, exact
    )
