"""The dialect's OpenAPI document (``/ta/openapi.json``): error bodies on every operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

PUBLIC: frozenset[tuple[str | None, str]] = frozenset(
    {(None, "/openapi.json"), (None, "/docs"), (None, "/docs/oauth2-redirect")}
)

_DESCRIPTIONS = {
    400: "Bad Request - Invalid input parameters (`ValidationError`).",
    401: "Unauthorized - Invalid or missing API key (`Unauthorized`).",
    403: "Forbidden - the key's user lacks the role or the token the scope (`Forbidden`).",
    404: "Not Found (`NotFound`).",
    409: "Conflict with the current state (`Conflict`).",
    429: "Too Many Requests - rate limit (`RateLimited`) or usage limit (`UsageLimitExceeded`).",
    500: "Internal Server Error (`InternalError`).",
    504: "Gateway Timeout - the run did not finish within `wait` (`GatewayTimeout`).",
}


class ErrorBody(BaseModel):
    error: str = Field(description="Error code or type")
    message: str = Field(description="Human-readable error message")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry for a route: these statuses plus 400/401/403/429/500."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 400, 401, 403, 429, 500}):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        out[code] = entry
    return out


def install(app: FastAPI, *, title: str, version: str, description: str) -> None:
    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=title,
            version=version,
            description=description,
            routes=app.routes,
            servers=[{"url": "/ta"}],
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (`sk_…` or a runplane `spci_…` token).",
            }
        }
        schema["security"] = [{"bearerAuth": []}]
        for item in schema.get("paths", {}).values():
            for op in item.values():
                # FastAPI's default 422 never happens here: validation errors are 400s.
                op.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
