"""The API against its own OpenAPI document, by Schemathesis (property-based: it makes
requests from the schemas, valid and not), on a running ``posfleet serve`` (SQLite and
PostgreSQL): no 5xx, every response matching its declared status, content type and
schema; errors are problem documents. Then, by hand, the inputs a client gets wrong:
bad JSON, an oversized body, wrong types, an unknown route, no token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fleet.web.server import Served

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def admin_token(console: Served) -> str:
    return str(dict(console.facts["tokens"])["admin"])  # type: ignore[call-overload]


def test_api_conforms(console: Served, admin_token: str) -> None:
    """Every operation of the document, with cases Schemathesis draws from its schemas
    (positive and negative), checked by all of its checks for the response."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    doc = httpx.get(f"{console.url}/api/openapi.json", headers=headers).json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    seen: dict[str, set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)  # fmt: skip
        def run(case: Any) -> None:
            response = case.call(base_url=console.url, headers=headers)
            key = f"{case.method} {case.path}"
            seen.setdefault(key, set()).add(response.status_code)
            assert response.status_code < 500, (key, case.formatted_path, response.text[:300])
            case.validate_response(response, headers=headers)
            if response.status_code >= 400:
                assert response.headers["content-type"] == [PROBLEM], key
                problem = response.json()
                assert problem["status"] == response.status_code
                assert problem["type"].startswith("/api/problems/")

        run()
    assert len(seen) == len(operations)
    assert any(code < 300 for codes in seen.values() for code in codes)


def test_clients_getting_it_wrong(console: Served, admin_token: str) -> None:
    api = httpx.Client(
        base_url=console.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
    )
    rid = console.facts["rollout"]

    def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == PROBLEM
        doc: dict[str, Any] = answer.json()
        assert doc["status"] == status and doc["instance"] == answer.request.url.path
        return doc

    json_type = {"content-type": "application/json"}
    doc = problem(api.post("/api/v1/verify", content=b'{"code": ', headers=json_type), 400)
    assert doc["type"] == "/api/problems/bad-request" and "not valid JSON" in doc["detail"]
    doc = problem(api.post("/api/v1/verify", json={"code": 12345}), 422)
    assert doc["errors"][0]["where"] == "body.code"
    problem(api.post(f"/api/v1/rollouts/{rid}/pause", json={"reason": ["a", "list"]}), 422)
    problem(api.get("/api/v1/terminals", params={"limit": "many"}), 422)
    problem(api.get("/api/v1/terminals", params={"limit": 100000}), 422)
    problem(api.get("/api/v1/terminals", params={"status": "melted"}), 422)
    problem(api.get("/api/v1/rollouts/not-a-number"), 422)
    problem(api.get("/api/v1/rollouts/424242"), 404)
    problem(api.get("/api/v1/no-such-thing"), 404)
    problem(api.delete("/api/v1/terminals"), 405)
    big = b'{"code": "' + b"A" * 70_000 + b'"}'
    doc = problem(api.post("/api/v1/verify", content=big, headers=json_type), 413)
    assert doc["type"] == "/api/problems/too-large"

    def chunks() -> Any:  # no Content-Length: refused while it streams in
        for _ in range(20):
            yield b"A" * 8192

    problem(api.post("/api/v1/verify", content=chunks(), headers=json_type), 413)
    anonymous = httpx.get(f"{console.url}/api/v1/terminals")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == PROBLEM
    wrong = httpx.get(f"{console.url}/api/v1/terminals", headers={"Authorization": "Basic eDp5"})
    assert wrong.status_code == 401
    forged = httpx.get(f"{console.url}/api/v1/terminals", headers={"Authorization": "Bearer pft_x"})
    assert forged.status_code == 401
