"""Sample Platform error envelope ``{code, message, details}`` and the mapping to it.

Domain errors are looked up by class MRO, so a handler for a base class covers
its subclasses. Framework errors (routing 404/405, request validation) come out
in the same envelope; anything unexpected is a logged 500 ``internal_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runplane.api.request_context import allow_header
from runplane.domain import errors as de

log = logging.getLogger(__name__)

MAX_MESSAGE = 500
PATH_IDS = frozenset({"run_id", "token_id", "project_id", "regression_test_id", "sample_id"})
_INT_MAX = 2147483647

#: Domain error class -> (HTTP status, code).
STATUS_OF: dict[type[de.RunplaneError], tuple[int, str]] = {
    de.NotFound: (404, "not_found"),
    de.PermissionDenied: (403, "forbidden"),
    de.InvalidInput: (400, "validation_error"),
    de.DuplicateName: (400, "validation_error"),
    de.Conflict: (409, "conflict"),
    de.Unprocessable: (422, "unprocessable"),
    de.InvalidCredentials: (401, "invalid_credentials"),
    de.PayloadTooLarge: (413, "payload_too_large"),
    de.UsageLimitExceeded: (429, "rate_limited"),
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"code": code, "message": message[:MAX_MESSAGE], "details": dict(details or {})}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def unauthorized() -> JSONResponse:
    return error_response(
        401,
        "unauthorized",
        "Bearer token is missing, expired, or invalid.",
        headers={"WWW-Authenticate": 'Bearer realm="runplane"'},
    )


def _lookup(exc: de.RunplaneError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500, "internal_error"


def domain_error_response(exc: de.RunplaneError) -> JSONResponse:
    status, code = _lookup(exc)
    details = dict(exc.details)
    if isinstance(exc, de.NotFound):
        details = {"resource": exc.resource, "id": exc.ident}
    if isinstance(exc, de.DuplicateName) and "fields" not in details:
        details = {"fields": {"token_name": [exc.message]}}
    headers = (
        {"Retry-After": str(exc.retry_after)} if isinstance(exc, de.UsageLimitExceeded) else {}
    )
    return error_response(status, code, exc.message, details, headers)


def _field_message(location: str, name: str, error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if location == "path" and name in PATH_IDS:
        if kind in ("int_parsing", "int_from_float"):
            return f"{name} must be a positive integer."
        return f"{name} must be between 1 and {_INT_MAX}."
    if name == "limit":
        if kind in ("int_parsing", "int_from_float"):
            return "limit must be an integer."
        return "limit must be between 1 and 100."
    if name in ("created_after", "created_before") and "datetime" in kind:
        return f"{name} must be a valid ISO 8601 datetime."
    return str(error.get("msg", "Invalid value."))


def validation_details(errors: Sequence[Any]) -> tuple[str, dict[str, list[str]]]:
    """The contract's message and ``details.fields`` for pydantic errors."""
    fields: dict[str, list[str]] = {}
    messages: list[str] = []
    body_error = False
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        location = loc[0] if loc else "body"
        name = ".".join(loc[1:]) or location
        if location == "body":
            body_error = True
        message = _field_message(location, loc[1] if len(loc) > 1 else name, error)
        fields.setdefault(name, []).append(message)
        messages.append(message)
    if body_error or not messages:
        return "Request failed schema validation.", fields
    return messages[0], fields


def install(app: FastAPI) -> None:
    @app.exception_handler(de.RunplaneError)
    async def _domain(_: Request, exc: de.RunplaneError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, fields = validation_details(exc.errors())
        return error_response(400, "validation_error", message, {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "not_found", "The requested resource was not found.")
        if exc.status_code == 405:
            return error_response(
                405,
                "method_not_allowed",
                f"Method {request.method} is not allowed for this resource.",
                headers={**(exc.headers or {}), **allow_header(app, request)},
            )
        code = "validation_error" if 400 <= exc.status_code < 500 else "internal_error"
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "An unexpected error occurred.")
