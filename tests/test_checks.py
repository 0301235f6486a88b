"""The argument check every layer shares (``jaxpg.checks``) and the places
that use it: a bool or a float is refused where a count is asked for, with
the argument named."""

import numpy as np
import pytest

from jaxpg.checks import positive_int
from jaxpg.kernels.batching import chunked_while_loop
from jaxpg.sequence.model import TransformerConfig
from jaxpg.sequence.tasks import add_task, sort_task


def test_positive_int_returns_a_python_int():
    assert positive_int("n", 3) == 3
    value = positive_int("n", np.int64(4))
    assert value == 4 and type(value) is int
    assert positive_int("first_seed", 0, low=0) == 0


@pytest.mark.parametrize(
    ("value", "low", "match"),
    [
        (0, 1, r"n=0 is invalid: must be an int >= 1$"),
        (-1, 0, r"n=-1 is invalid: must be an int >= 0$"),
        (True, 1, r"n=True is invalid: must be an int >= 1, got bool"),
        (np.True_, 1, r"got bool"),
        (2.0, 1, r"n=2.0 is invalid: must be an int >= 1, got float"),
        ("3", 1, r"got str"),
    ],
)
def test_positive_int_names_the_argument_the_value_and_the_bound(value, low, match):
    with pytest.raises(ValueError, match=match):
        positive_int("n", value, low)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda v: chunked_while_loop(lambda c: False, lambda c: c, 0, v), "chunk"),
        (lambda v: TransformerConfig(vocab_size=v), "vocab_size"),
        (lambda v: TransformerConfig(num_layers=v), "num_layers"),
        (lambda v: sort_task(num_digits=v), "num_digits"),
        (lambda v: add_task(num_digits=v), "num_digits"),
    ],
)
def test_counts_refuse_a_bool_and_a_float(build, name):
    for bad in (True, 2.0, 0):
        with pytest.raises(ValueError, match=rf"{name}={bad!r} is invalid"):
            build(bad)


def test_a_numpy_count_is_kept_as_a_python_int():
    """A NumPy integer is a valid count, stored as a Python int: a config
    that holds one must still serialise to JSON (a saved reference)."""
    import dataclasses
    import json

    cfg = TransformerConfig(vocab_size=np.int64(16), width=np.int32(8))
    assert type(cfg.vocab_size) is int and type(cfg.width) is int
    json.dumps(dataclasses.asdict(cfg))
    assert type(sort_task(num_digits=np.int64(2)).prompt_len) is int
