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
from schemathesis.generation.modes import GenerationMode

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


def test_no_generated_request_gives_a_server_error(app, tenant):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @BOUNDED
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def no_server_error(case) -> None:
                case.call_and_validate(headers=tenant.admin, checks=[not_a_server_error])

            try:
                no_server_error()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to get wrong: e.g. no invalid request exists for GET /health
            except Exception as exc:  # one report for every failing operation
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    print(f"schemathesis: {time.monotonic() - started:.1f}s")
    assert not failures, "\n\n".join(failures)
