"""Tester Army error envelope ``{error, message}`` and the mapping to it.

The ``error`` strings are the documented ones (``ValidationError``, ``Unauthorized``,
``RateLimited``, ``InternalError``) plus ``NotFound``, ``Conflict``, ``Forbidden``,
``UsageLimitExceeded`` and ``GatewayTimeout`` where the docs name none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from runplane.api.rate_limits import Decision
from runplane.api.request_context import allow_header
from runplane.domain import errors as de

log = logging.getLogger(__name__)
MAX_MESSAGE = 500

STATUS_OF: dict[type[de.RunplaneError], tuple[int, str]] = {
    de.NotFound: (404, "NotFound"),
    de.PermissionDenied: (403, "Forbidden"),
    de.InvalidInput: (400, "ValidationError"),
    de.Unprocessable: (400, "ValidationError"),
    de.Conflict: (409, "Conflict"),
    de.UsageLimitExceeded: (429, "UsageLimitExceeded"),
    de.InvalidCredentials: (401, "Unauthorized"),
    de.PayloadTooLarge: (413, "PayloadTooLarge"),
}


class DialectError(Exception):
    """An answer decided in the dialect layer (a bad path id, a wait that ran out)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.http_status = status
        self.error = error
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(message)


def error_response(
    status: int,
    error: str,
    message: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {**dict(extra or {}), "error": error, "message": message[:MAX_MESSAGE]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def unauthorized() -> Response:
    return error_response(
        401,
        "Unauthorized",
        "Invalid or missing API key.",
        headers={"WWW-Authenticate": 'Bearer realm="runplane"'},
    )


def rate_limited(decision: Decision, headers: dict[str, str]) -> Response:
    return error_response(
        429,
        "RateLimited",
        f"Too many requests; back off and retry after {decision.retry_after} seconds.",
        headers=headers,
    )


def _lookup(exc: de.RunplaneError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500, "InternalError"


def domain_error_response(exc: de.RunplaneError) -> JSONResponse:
    status, error = _lookup(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, de.UsageLimitExceeded):
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(status, error, exc.message, headers=headers)


def validation_message(errors: Sequence[Any]) -> str:
    """``field: problem`` pairs, as in the documented ``"prompt: Required"``."""
    parts = []
    for error in errors[:5]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "body"
        kind = str(error.get("type", ""))
        if kind == "json_invalid":
            parts.append("body: Invalid JSON")
            continue
        message = "Required" if kind == "missing" else str(error.get("msg", "Invalid value"))
        parts.append(f"{name}: {message}")
    return "; ".join(parts) or "Invalid input parameters."


def install(app: FastAPI) -> None:
    @app.exception_handler(de.RunplaneError)
    async def _domain(_: Request, exc: de.RunplaneError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(DialectError)
    async def _dialect(_: Request, exc: DialectError) -> JSONResponse:
        return error_response(exc.http_status, exc.error, exc.message, exc.extra, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "ValidationError", validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "NotFound", "The requested resource was not found.")
        if exc.status_code == 405:
            return error_response(
                405,
                "MethodNotAllowed",
                f"Method {request.method} is not allowed for this resource.",
                headers={**(exc.headers or {}), **allow_header(app, request, alias="/api")},
            )
        error = "ValidationError" if 400 <= exc.status_code < 500 else "InternalError"
        return error_response(exc.status_code, error, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "InternalError", "An unexpected error occurred.")
