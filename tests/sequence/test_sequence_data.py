"""Prompts from a user's dataset (token arrays, or strings with the built-in
character tokenizer), its columns passed to the rewards, and host Python
rewards through ``jax.pure_callback``: equal to the jittable reward, and a
wrong return named."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.sequence import RLConfig, model, rl, tasks
from jaxpg.sequence.data import CharTokenizer, dataset_task, pad_left
from jaxpg.sequence.host_reward import host_reward


def test_char_tokenizer_round_trip_padding_and_errors():
    tok = CharTokenizer("0123456789+=")
    # ids: PAD 0, EOS 1, '0' -> 2, ..., '+' -> 12, '=' -> 13.
    assert tok.vocab_size == 14 and tok.encode("1+2=") == [3, 12, 4, 13]
    assert tok.decode([0, 0, 3, 12, 4, 13, 1, 5]) == "1+2="  # pads skipped, EOS ends
    assert CharTokenizer.from_texts(["ba", "ca"]).alphabet == "abc"
    np.testing.assert_array_equal(pad_left([[5], [6, 7, 8]]), [[0, 0, 5], [6, 7, 8]])
    with pytest.raises(ValueError, match=r"characters \['x'\] not in the alphabet"):
        tok.encode("1x")
    with pytest.raises(ValueError, match="repeats a character"):
        CharTokenizer("aa")
    with pytest.raises(ValueError, match="id 14 is not in"):
        tok.decode([14])


def test_host_reward_equals_the_jittable_reward_of_sort_under_jit_and_vmap():
    """TRL's shape on token ids: exact match of the sorted digits (the
    completion without its EOS) equals ``sort``'s own exact reward."""
    task = tasks.sort_task(3)

    def exact(prompts, completions):
        return [
            float(c.tolist() == sorted(p[:-1].tolist()))
            for p, c in zip(prompts, completions, strict=True)
        ]

    prompts = task.sample_prompts(jax.random.key(0), 8)
    right = task.answers(prompts)  # [8, 4], EOS last
    wrong = jnp.roll(right, 1, axis=1)
    responses = jnp.where(jnp.arange(8)[:, None] % 3 == 0, right, wrong)
    mask = jnp.ones(responses.shape, jnp.float32)
    want = task.reward(prompts, responses, mask)
    assert 0 < float(want.sum()) < 8  # both outcomes present
    h = host_reward(exact)
    np.testing.assert_array_equal(jax.jit(h)(prompts, responses, mask), want)
    stacked = [jnp.stack([x, x[::-1]]) for x in (prompts, responses, mask)]
    got = jax.jit(jax.vmap(h))(*stacked)
    np.testing.assert_array_equal(got, jnp.stack([want, want[::-1]]))


def test_a_sampled_pad_is_in_the_ids_and_skipped_in_the_decoded_string():
    """What docs/llm.md warns of: a completion ``1 <pad> 2 3`` (no EOS) is four
    ids on the host, but ``"123"`` once ``CharTokenizer`` decodes it."""
    tok = CharTokenizer("0123456789+=")
    prompts = jnp.array([tok.encode("312=")], jnp.int32)
    responses = jnp.array([[3, 0, 4, 5]], jnp.int32)  # 1 <pad> 2 3
    mask = jnp.ones(responses.shape, jnp.float32)
    seen = {}

    def record(key):
        def fn(prompts, completions):
            seen[key] = completions[0]
            return [0.0]

        return fn

    host_reward(record("ids"))(prompts, responses, mask).block_until_ready()
    host_reward(record("text"), tokenizer=tok)(
        prompts, responses, mask
    ).block_until_ready()
    np.testing.assert_array_equal(seen["ids"], [3, 0, 4, 5])
    assert seen["text"] == "123"


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ([1.0], "returned list of length 1: expected a list of 4 numbers"),
        ("oops", "returned str 'oops': expected a list of 4 numbers"),
        (["a", "b", "c", "d"], "returned list of length 4 holding non-numbers"),
        (None, "returned NoneType: expected a list of 4 numbers"),
    ],
)
def test_host_reward_names_a_wrong_return(returned, message):
    def my_reward(prompts, completions):
        return returned

    x = jnp.zeros((4, 2), jnp.int32)
    with pytest.raises(Exception, match=f"host reward .*my_reward {message}"):
        jax.jit(host_reward(my_reward))(x, x, jnp.ones((4, 2))).block_until_ready()


WORDS = ["abca", "bb", "cab", "a", "ccb"]


@pytest.fixture(scope="module")
def word_tasks():
    """One dataset of string prompts with a numeric and a string column,
    scored by a jittable reward and by a host reward of the same value:
    occurrences of the row's letter in the prompt and in the response."""
    tok = CharTokenizer.from_texts(WORDS)
    letters = ["a", "b", "c", "a", "b"]
    columns = {"target": [tok.encode(c)[0] for c in letters], "letter": letters}

    def on_device(prompts, responses, mask, target):
        hits = jnp.sum(prompts == target[:, None], axis=1)
        return hits + jnp.sum((responses == target[:, None]) * mask, axis=1)

    def on_host(prompts, completions, target, letter):
        del target
        return [
            p.count(x) + c.count(x)
            for p, c, x in zip(prompts, completions, letter, strict=True)
        ]

    made = [
        dataset_task(WORDS, fn, max_new_tokens=4, columns=columns, tokenizer=tok)
        for fn in (on_device, host_reward(on_host, tokenizer=tok))
    ]
    return tok, made


def test_dataset_prompts_are_rows_left_padded_and_columns_follow_them(word_tasks):
    tok, (task, _) = word_tasks
    assert task.prompt_len == 4
    prompts = task.sample_prompts(jax.random.key(3), 16)
    columns = tasks.draw_columns(task, jax.random.key(3), 16)
    texts = [tok.decode(p) for p in np.asarray(prompts)]
    assert set(texts) <= set(WORDS) and len(set(texts)) > 2
    # The columns are the drawn rows' own; "bb" is stored as [PAD, PAD, b, b].
    assert [WORDS[i] for i in np.asarray(columns["_row"])] == texts
    row_bb = np.asarray(prompts)[texts.index("bb")]
    np.testing.assert_array_equal(row_bb, [0, 0, *tok.encode("bb")])
    with pytest.raises(ValueError, match="no ground-truth answers"):
        task.answers(prompts)


def test_dataset_rollout_host_reward_equals_jittable_reward(word_tasks):
    """A rollout on the jittable task under jit and vmap over two seeds, its
    responses scored again by the host task (strings, the string column
    looked up by row) with the columns drawn from the rollout's prompt key:
    the same rewards; ``evaluate`` on both tasks too (one compiled program)."""
    tok, (on_device, on_host) = word_tasks
    cfg = model.TransformerConfig(
        vocab_size=tok.vocab_size, width=8, num_layers=1, num_heads=2, max_len=8
    )
    params = model.init(jax.random.key(0), cfg)
    rl_cfg = RLConfig(num_prompts=4, group_size=2)

    def both(key):
        ro = rl.rollout(key, params, params, on_device, cfg, rl_cfg)
        prompt_key, _ = jax.random.split(key)  # as rollout draws its prompts
        columns = tasks.draw_columns(on_host, prompt_key, 4, 2)
        again = rl.scores(on_host, ro.prompts, ro.responses, ro.mask, "N", columns)
        evals = [rl.evaluate(key, params, t, cfg, 8) for t in (on_device, on_host)]
        return ro.reward, again[0], again[1], [e["reward"] for e in evals]

    keys = jax.random.split(jax.random.key(1), 2)
    want, got, true, evals = jax.jit(jax.vmap(both))(keys)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(true, got)  # true_reward defaults to reward
    assert len(np.unique(np.asarray(want))) > 2  # rewards that tell rows apart
    # evaluate draws its rows' columns too: the same mean reward both ways.
    np.testing.assert_array_equal(evals[1], evals[0])
    assert (np.asarray(evals[0]) > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts": ["ab"]}, "prompts are strings: pass tokenizer="),
        ({"prompts": "ab"}, "prompts is one string"),
        ({"prompts": [[2], [3]], "columns": {"x": [1]}}, "column 'x' has 1 rows"),
        ({"prompts": [[2]], "columns": {"mask": [1]}}, "'mask' is taken"),
        ({"prompts": [[2]], "columns": {"_row": [1]}}, "other than '_row'"),
        ({"prompts": np.zeros((2, 2))}, "dtype float64: must be token ids"),
        ({"prompts": [[2]], "max_new_tokens": 0}, "max_new_tokens=0 is invalid"),
    ],
)
def test_dataset_task_refuses_bad_input(kwargs, message):
    kwargs = {"reward": lambda p, r, m: m[:, 0], "max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        dataset_task(**kwargs)
