"""No input produces a 500: schemathesis fuzzes every operation of the OpenAPI schema
through the ASGI app, with values that fit the schema (positive) and values that break
it (negative: wrong types, out-of-range numbers, missing fields), and every answer must be
a non-5xx that conforms to the documented response schema and content type.

schemathesis' own pytest plugin does not run under this pytest, so the cases are drawn
from each operation's hypothesis strategy directly.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

pytestmark = pytest.mark.slow

OPERATIONS = [
    "GET /health",
    "GET /models",
    "GET /users",
    "GET /users/{user_id}/recommendations",
    "GET /users/{user_id}/history",
    "POST /recommendations",
    "POST /recommendations/batch",
    "GET /videos",
    "GET /videos/{video_id}",
    "GET /videos/{video_id}/similar",
]
NO_PARAMETERS = {"GET /health", "GET /models"}  # nothing to break: positive cases only
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in OPERATIONS if label not in NO_PARAMETERS
]
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api_schema(serve_state):
    from kuairec.serve.app import create_app

    return schemathesis.openapi.from_asgi("/openapi.json", create_app(serve_state))


def test_the_fuzzed_operations_are_every_operation(api_schema) -> None:
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{a}-{b.value}" for a, b in CASES])
def test_no_input_gives_a_server_error(api_schema, label: str, mode) -> None:
    operation = api_schema.find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case) -> None:
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code < 500, response.text

    fuzz()
