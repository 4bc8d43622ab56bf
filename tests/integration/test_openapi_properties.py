"""Property-based test over the OpenAPI document: no generated request gives a 5xx.

For every operation of ``/openapi.json``, schemathesis generates requests that fit
the document and requests that do not, and sends them as an admin to the Flask app
in-process (WSGI), on both databases; the broker is the real Redis under the run's
key prefix, so enqueueing works.

The operations are walked here rather than through ``schema.parametrize()``: its
lazy (fixture-based) form, which the per-database app needs, relies on a pytest
internal that pytest 9 removed.
"""

from __future__ import annotations

import time

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

from api import create_app
from shared.config import CONTROL_QUEUE
from tests.broker_inspect import drain

# Bounded so that the whole suite stays within its time budget on two cores.
EXAMPLES_PER_OPERATION = 40
BOUNDED = hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure is printed as found
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def empty_queues(redis_client, broker_prefix):
    yield
    drain(redis_client, broker_prefix, CONTROL_QUEUE)


def hostile_cases(schema, operation) -> list:
    """Hand-picked inputs that random generation rarely reaches: a NUL in every path
    parameter, and integer query parameters at the edge of 64 bits."""
    item = schema.raw_schema["paths"][operation.path]
    parameters = item.get("parameters", []) + item[operation.method.lower()].get("parameters", [])
    names = {where: [p["name"] for p in parameters if p["in"] == where] for where in ("path", "query")}
    integers = [p["name"] for p in parameters if p["in"] == "query" and p["schema"].get("type") == "integer"]
    cases = []
    if names["path"]:
        cases.append(operation.Case(path_parameters=dict.fromkeys(names["path"], "a\x00b")))
    path = dict.fromkeys(names["path"], "x")
    cases += [operation.Case(path_parameters=path, query={name: 2**63 - 1}) for name in integers]
    return cases


def test_no_generated_request_gives_a_server_error(settings, tenant):
    # A live event stream ends at once here, so that each generated call returns.
    app = create_app(settings.with_overrides(EVENTS_STREAM_MAX_SECONDS=0.05, EVENTS_STREAM_POLL_SECONDS=0.01))
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for case in hostile_cases(schema, operation):
            try:
                case.call_and_validate(headers=tenant.admin, checks=[not_a_server_error])
            except (Exception, FailureGroup) as exc:
                failures.append(f"{operation.method.upper()} {operation.path} (hand-picked): {exc}")
        for mode in GenerationMode:

            @BOUNDED
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def no_server_error(case) -> None:
                case.call_and_validate(headers=tenant.admin, checks=[not_a_server_error])

            try:
                no_server_error()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to get wrong: e.g. no invalid request exists for GET /health
            except (Exception, FailureGroup) as exc:  # one report for every failing operation
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    print(f"schemathesis: {time.monotonic() - started:.1f}s")
    assert not failures, "\n\n".join(failures)
