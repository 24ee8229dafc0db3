"""Property-based fuzzing of every route against the live graph: schemathesis, from June's own OpenAPI schema.

Whatever the body, the headers or the path, June answers with a status below 500 and its JSON error shape.
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

EXAMPLES_PER_ROUTE = 12
# Each valid example of these runs the language model (or waits) for seconds: fewer, to keep the suite's time.
EXAMPLES_OF_SLOW_ROUTES = {"POST /v1/chat": 6, "POST /v1/chat/stream": 3, "POST /v1/chat/completions": 6,
                            "GET /v1/outbox": 4}  # a valid poll waits for deliveries (2 s in the test graph)
ERROR_KEYS = {"message", "type", "code"}


@pytest.fixture(scope="module")
def api_schema(graph):
    schema = schemathesis.openapi.from_url(f"{graph.url}/openapi.json", headers=graph.headers)
    yield schema
    # What the fuzzer queued for made-up users (POST /v1/messages, inbox answers) is not for the bots of later tests.
    with sqlite3.connect(graph.settings.messages_db) as db:
        db.execute("UPDATE outbox SET status = 'failed', detail = 'queued by the fuzzer' WHERE status = 'pending'")


def test_every_route_documents_its_body(graph) -> None:
    spec = httpx.get(f"{graph.url}/openapi.json", headers=graph.headers, timeout=30).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch"):
                content = operation.get("requestBody", {}).get("content", {})
                assert content, f"{method.upper()} {path} has no request body in the schema"
                assert all("schema" in media for media in content.values()), path


def test_no_input_makes_a_server_error(api_schema, graph) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not run under pytest 9): bodies, forms, headers,
    paths and queries drawn from the schema, valid and not."""
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_OF_SLOW_ROUTES.get(operation.label, EXAMPLES_PER_ROUTE), deadline=None,
                  derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            response = case.call(base_url=graph.url, headers=graph.headers, timeout=180)  # the owner's key
            assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
            content_type = (response.headers.get("content-type") or [""])[0]
            if response.status_code >= 400 and content_type.startswith("application/json"):
                assert set(response.json()["error"]) == ERROR_KEYS

        started = time.monotonic()
        no_server_error()
        checked.append(operation.label)
        print(f"fuzzed {operation.label} in {time.monotonic() - started:.0f} s")
    assert len(checked) >= 15, checked
