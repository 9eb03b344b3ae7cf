"""Fuzz the run configuration: random keys, types and values through
``load_run_config(None, values)``: either a RunConfig or a one-line ConfigError that
names a setting it was given. Never another exception."""

from __future__ import annotations

import dataclasses

import _fuzz
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kuairec.errors import ConfigError
from kuairec.pipeline.config import RunConfig, load_run_config

pytestmark = pytest.mark.fuzz

KNOWN = [f.name for f in dataclasses.fields(RunConfig)]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            0,
            1,
            5,
            0.2,
            1e-9,
            1e308,
            "5",
            "0.2",
            "",
            "ease",
            "wr>2",
            "wr>nan",
            "duration",
            "temporal",
            "random",
            "cpu",
            "gpu",
            "kuairec",
            "runs",
            "../x",
            "a/b",
            "\x00",
            "ü",
            "nan",
            "inf",
        ]
    ),  # fmt: skip
    st.text(max_size=10),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=6) | st.sampled_from(["ease", "als"]), inner, max_size=3),
    ),
    max_leaves=6,
)
KEYS = st.one_of(st.sampled_from(KNOWN), st.text(max_size=8))


@_fuzz.fuzz_settings(600)
@given(values=st.dictionaries(KEYS, VALUES, max_size=4))
def test_random_settings_give_a_config_or_one_clear_error(values: dict) -> None:
    try:
        cfg = load_run_config(None, values)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message, message
        given_keys = [k for k, v in values.items() if v is not None]
        assert any(k in message or repr(k) in message for k in given_keys), (message, values)
        _fuzz.count("run config", "ConfigError")
        return
    assert isinstance(cfg, RunConfig)
    _fuzz.count("run config", "RunConfig")
