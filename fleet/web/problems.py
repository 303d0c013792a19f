"""Errors as RFC 9457 problem documents (``application/problem+json``) for the API, and
as a page for people.

Every error the API answers is ``{"type", "title", "status", "detail", "instance"}``
(plus ``errors`` for invalid input, ``retry_after`` when throttled). ``type`` is a
relative URI naming the kind (``/api/problems/not-found``), listed in
``docs/console.md``. A :class:`~fleet.core.errors.FleetError` answers with its class's
``http_status`` and its own one-line message; an unexpected error with a 500 that says
nothing of the inside (it is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from fleet.access import ThrottledError
from fleet.core.errors import FleetError

__all__ = ["CONFLICT", "JOB_FAILED", "PROBLEM_RESPONSES", "Problem", "install", "problem"]

log = logging.getLogger("fleet.web")
MEDIA = "application/problem+json"

_SLUGS = {
    400: "bad-request",
    401: "not-signed-in",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "throttled",
    500: "internal",
    502: "job-failed",
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, Any]] | None = None
    retry_after: int | None = None


_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": HTTPStatus(code).phrase} for code in (400, 401, 403, 404, 413, 422, 429)
}
"""What every API route may answer besides its success (declared in the OpenAPI)."""
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Conflict"}}
"""Declared by the routes that change state the fleet's state may forbid."""
JOB_FAILED: dict[int | str, dict[str, Any]] = {502: {"description": "Bad Gateway"}}
"""Declared by the routes that run a job on a device (it may fail)."""


def problem_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every error response (4xx/5xx) declared as a problem document, and
    the problem schema among its components (FastAPI's own validation-error schemas go)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for item in doc.get("paths", {}).values():
        for op in item.values():
            for code, response in op.get("responses", {}).items():
                if code[:1] in "45":
                    response["content"] = {MEDIA: {"schema": _REF}}
                    response.setdefault("description", HTTPStatus(int(code)).phrase)
    return doc


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    retry_after: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"/api/problems/{_SLUGS.get(status, 'error')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers = {**(headers or {}), "Retry-After": str(retry_after)}
    return JSONResponse(body, status_code=status, media_type=MEDIA, headers=dict(headers or {}))


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _clean_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "where": ".".join(loc),
                "problem": str(err.get("msg", ""))[:200],
                "kind": err.get("type", ""),
            }
        )
    return out[:20]


def install(app: Any, page_error: Callable[..., Response]) -> None:
    """Register the handlers: problem documents under ``/api/``, ``page_error`` (a
    function of request, status, message → response) elsewhere."""

    async def on_fleet(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FleetError)
        retry = exc.retry_after if isinstance(exc, ThrottledError) else None
        status = exc.http_status
        if status >= 500 and status != 502:
            log.error("%s: %s", request.url.path, exc)
        if is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return problem(request, status, str(exc), retry_after=retry, headers=headers)
        return page_error(request, status, str(exc), retry_after=retry)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if is_api(request):
            return problem(request, exc.status_code, detail, headers=exc.headers)
        return page_error(request, exc.status_code, detail)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _clean_errors(exc)
        bad_json = any(e["kind"] == "json_invalid" for e in errors)
        status = 400 if bad_json else 422
        detail = (
            "the body is not valid JSON"
            if bad_json
            else "invalid input: " + "; ".join(f"{e['where']}: {e['problem']}" for e in errors[:3])
        )
        if is_api(request):
            return problem(request, status, detail, errors=errors)
        return page_error(request, status, detail)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        if is_api(request):
            return problem(request, 500, "unexpected error (logged)")
        return page_error(request, 500, "unexpected error (logged)")

    app.add_exception_handler(FleetError, on_fleet)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_crash)
