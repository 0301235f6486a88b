r"""Tasks with verifiable rewards, generated from the key (no data download).

Vocabulary (:data:`VOCAB_SIZE` = 14): ``PAD=0``, ``EOS=1``, digits ``0..9`` as
``2..11`` (:func:`digit`), ``PLUS=12``, ``EQ=13``. Prompts have a fixed length
per task; every answer ends with ``EOS``.

A reward is a jittable ``reward_fn(prompts [N, Lp], responses [N, R],
mask [N, R], **columns) -> [N] float32`` (a user may pass their own:
:func:`with_reward`; a host Python function through
:func:`jaxpg.sequence.host_reward.host_reward`). ``columns`` are the extra columns of
a dataset's rows (:func:`jaxpg.sequence.data.dataset_task`: ``{name: [N,
...]}``, drawn with the prompts by :func:`draw_columns`); the built-in tasks
have none.
Each :class:`Task` carries three of them:

* ``reward``: what RL maximises: exact match (``reward="exact"``, the default)
  or partial credit (``reward="partial"``);
* ``true_reward``: what the user really wants, tracked next to it (exact match);
* ``accuracy``: exact match, 1 when the response up to and including EOS equals
  the answer.

Built-in tasks (:func:`make_task`):

* ``sort``: ``d_1 .. d_K =`` -> the digits sorted ascending, ``EOS``.
* ``add``: ``a + b =`` with ``n``-digit operands written with leading zeros ->
  the ``n + 1``-digit sum with leading zeros, ``EOS``.
* ``sort_proxy``: ``sort`` whose optimised reward is a flawed proxy that also
  pays ``length_bonus`` per response token (longer looks "more thorough"):
  ``proxy = partial + length_bonus * |y|``. The true reward is exact match, so
  a policy that learns to keep talking past the answer raises the proxy while
  the true reward falls: reward hacking.

Partial credit: the fraction of the answer's positions (EOS included) where the
response has the answer's token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxpg.checks import positive_int

Array = jax.Array
RewardFn = Callable[[Array, Array, Array], Array]

PAD, EOS, PLUS, EQ = 0, 1, 12, 13
VOCAB_SIZE = 14
TASKS = ("sort", "add", "sort_proxy")


def digit(d: Array | int) -> Array:
    """Token id of digit(s) ``d`` (0..9)."""
    return jnp.asarray(d, jnp.int32) + 2


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A prompt distribution, its ground truth and its rewards (all jittable).

    Attributes:
      name: for reports.
      prompt_len: ``Lp``.
      answer_len: ``La``, ground-truth length including EOS.
      max_new_tokens: default response budget ``R >= La``.
      sample_prompts: ``(key, n) -> [n, Lp]`` int32.
      answers: ``prompts [N, Lp] -> [N, La]`` int32 ground truth.
      reward: optimised reward ``(prompts, responses, mask) -> [N]``.
      true_reward: the reward the user cares about, same signature.
      accuracy: exact match, same signature.
      has_proxy: ``reward`` is a proxy of ``true_reward`` (metrics name it so).
      sample_columns: ``(key, n) -> {name: [n, ...]}``, the extra columns of
        the rows ``sample_prompts(key, n)`` draws with the same key, passed to
        the reward functions as keywords; ``None``: no columns.
    """

    name: str
    prompt_len: int
    answer_len: int
    max_new_tokens: int
    sample_prompts: Callable[[Array, int], Array]
    answers: Callable[[Array], Array]
    reward: RewardFn
    true_reward: RewardFn
    accuracy: RewardFn
    has_proxy: bool = False
    sample_columns: Callable[[Array, int], dict[str, Array]] | None = None


def draw_columns(task: Task, key: Array, n: int, repeat: int = 1) -> dict[str, Array]:
    """The columns of the ``n`` rows ``task.sample_prompts(key, n)`` draws,
    each row repeated ``repeat`` times as the prompts of a group are
    (``{name: [n repeat, ...]}``; ``{}`` for a task without columns)."""
    if task.sample_columns is None:
        return {}
    columns = task.sample_columns(key, n)
    return {k: jnp.repeat(v, repeat, axis=0) for k, v in columns.items()}


def _matches(answers: Array, responses: Array) -> Array:
    """``[N, La]`` 1 where the response has the answer's token."""
    la = answers.shape[1]
    if responses.shape[1] < la:
        raise ValueError(
            f"responses have length {responses.shape[1]} < the answer length {la}: "
            "raise max_new_tokens"
        )
    return (responses[:, :la] == answers).astype(jnp.float32)


def _scorers(answers_fn):
    def exact(prompts, responses, mask):
        del mask  # the answer ends in EOS: a match implies the response ends there
        return jnp.all(_matches(answers_fn(prompts), responses) > 0, axis=1).astype(
            jnp.float32
        )

    def partial(prompts, responses, mask):
        del mask
        return jnp.mean(_matches(answers_fn(prompts), responses), axis=1)

    return exact, partial


def _sort_parts(num_digits: int):
    def sample_prompts(key, n):
        digits = jax.random.randint(key, (n, num_digits), 0, 10)
        eq = jnp.full((n, 1), EQ, jnp.int32)
        return jnp.concatenate([digit(digits), eq], axis=1)

    def answers(prompts):
        body = jnp.sort(prompts[:, :num_digits], axis=1)
        return jnp.concatenate(
            [body, jnp.full((prompts.shape[0], 1), EOS, jnp.int32)], axis=1
        )

    return sample_prompts, answers


def sort_task(
    num_digits: int = 3, max_new_tokens: int | None = None, reward: str = "exact"
) -> Task:
    """Sort ``num_digits`` random digits (``reward``: "exact" or "partial")."""
    num_digits = positive_int("num_digits", num_digits)
    sample_prompts, answers = _sort_parts(num_digits)
    exact, partial = _scorers(answers)
    la = num_digits + 1
    return Task(
        "sort", num_digits + 1, la, _budget(max_new_tokens, la),
        sample_prompts, answers, _pick(reward, exact, partial), exact, exact,
    )  # fmt: skip


def add_task(
    num_digits: int = 1, max_new_tokens: int | None = None, reward: str = "exact"
) -> Task:
    """Add two ``num_digits``-digit numbers (``reward``: "exact" or "partial")."""
    num_digits = positive_int("num_digits", num_digits)
    n_d = num_digits

    def sample_prompts(key, n):
        ka, kb = jax.random.split(key)
        a = jax.random.randint(ka, (n, n_d), 0, 10)
        b = jax.random.randint(kb, (n, n_d), 0, 10)
        plus = jnp.full((n, 1), PLUS, jnp.int32)
        eq = jnp.full((n, 1), EQ, jnp.int32)
        return jnp.concatenate([digit(a), plus, digit(b), eq], axis=1)

    def answers(prompts):
        # Digit by digit with a carry, as by hand: no integer of the sum is
        # formed, so any number of digits is exact (int32 overflows past 9).
        a = prompts[:, :n_d] - 2  # most significant digit first
        b = prompts[:, n_d + 1 : 2 * n_d + 1] - 2
        carry = jnp.zeros(prompts.shape[0], a.dtype)
        low_first = []
        for i in range(n_d - 1, -1, -1):
            total = a[:, i] + b[:, i] + carry
            low_first.append(total % 10)
            carry = total // 10
        digits = jnp.stack([carry, *low_first[::-1]], axis=1)  # [N, n_d + 1]
        eos = jnp.full((prompts.shape[0], 1), EOS, jnp.int32)
        return jnp.concatenate([digit(digits), eos], axis=1)

    exact, partial = _scorers(answers)
    la = n_d + 2
    return Task(
        "add", 2 * n_d + 2, la, _budget(max_new_tokens, la),
        sample_prompts, answers, _pick(reward, exact, partial), exact, exact,
    )  # fmt: skip


def sort_proxy_task(
    num_digits: int = 3, max_new_tokens: int | None = None, length_bonus: float = 0.2
) -> Task:
    """``sort`` optimised on ``partial + length_bonus * |y|`` (a flawed proxy)."""
    num_digits = positive_int("num_digits", num_digits)
    la = num_digits + 1
    max_new_tokens = _budget(max_new_tokens, la, la + 4)
    task = sort_task(num_digits, max_new_tokens, reward="partial")

    def proxy(prompts, responses, mask):
        return task.reward(prompts, responses, mask) + length_bonus * jnp.sum(
            mask, axis=1
        )

    return dataclasses.replace(
        task, name="sort_proxy", reward=proxy, true_reward=task.accuracy,
        has_proxy=True,
    )  # fmt: skip


def make_task(name: str, **kwargs) -> Task:
    """A built-in task by name (:data:`TASKS`); ``kwargs`` go to its factory."""
    factories = {"sort": sort_task, "add": add_task, "sort_proxy": sort_proxy_task}
    if name not in factories:
        raise ValueError(f"task={name!r} is not one of {TASKS}")
    return factories[name](**kwargs)


def with_reward(task: Task, reward_fn: RewardFn, *, proxy: bool = False) -> Task:
    """``task`` optimised on a user ``reward_fn(prompts, responses, mask) -> [N]``.

    With ``proxy=True`` the task's own true reward stays as ``true_reward`` and
    the metrics treat ``reward_fn`` as a proxy (reward-hacking flag).
    """
    if not callable(reward_fn):
        raise TypeError(f"reward_fn={reward_fn!r} is not callable")
    true = task.true_reward if proxy else reward_fn
    return dataclasses.replace(
        task, reward=reward_fn, true_reward=true, has_proxy=proxy
    )


def _pick(reward: str, exact: RewardFn, partial: RewardFn) -> RewardFn:
    if reward not in ("exact", "partial"):
        raise ValueError(f"reward={reward!r} is not one of ('exact', 'partial')")
    return exact if reward == "exact" else partial


def _budget(max_new_tokens: int | None, answer_len: int, default: int | None = None):
    """The response budget: ``default`` (the answer length) for ``None``,
    else an int that holds the answer."""
    if max_new_tokens is None:
        return answer_len if default is None else default
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < answer_len
    ):
        raise ValueError(
            f"max_new_tokens={max_new_tokens!r} is invalid: must be an int >= "
            f"the answer length {answer_len} (EOS included), or None"
        )
    return max_new_tokens
