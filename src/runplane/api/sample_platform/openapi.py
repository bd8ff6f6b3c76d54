"""OpenAPI details FastAPI cannot infer: error responses, headers, security, body schemas."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from runplane.api.sample_platform.deps import BODY_MODELS
from runplane.api.sample_platform.policy import PUBLIC
from runplane.api.sample_platform.schemas import ErrorBody

_DESCRIPTIONS = {
    400: "Validation error (`validation_error`, with `details.fields`).",
    401: "Missing, expired, or invalid bearer token (`unauthorized`).",
    403: "Token lacks the required scope or the user the required role (`forbidden`).",
    404: "Resource not found (`not_found`).",
    405: "Method not allowed (`method_not_allowed`).",
    409: "Conflict with the current state (`conflict`).",
    415: "Content-Type must be application/json (`validation_error`).",
    416: "The range starts past the end of the log (`range_not_satisfiable`); "
    "`Content-Range: bytes */<size>`.",
    422: "Semantically invalid request (`unprocessable`).",
    429: "Too many requests (`rate_limited`); see `Retry-After`.",
    500: "Unexpected server error (`internal_error`).",
}

RATE_HEADERS: dict[str, Any] = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the window.",
        "schema": {"type": "string"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the window.",
        "schema": {"type": "string"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time (s) at which the window resets.",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "IETF draft: limit, remaining, reset (seconds).",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "IETF draft: limit;w=window seconds.",
        "schema": {"type": "string"},
    },
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry for a route: these statuses, in the error envelope."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in (*codes, 429, 500):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        out[code] = entry
    return out


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``errors(...)`` spelled out as JSON, for a route whose success is not JSON: FastAPI
    would otherwise document its errors with the success's media type."""
    out: dict[int | str, dict[str, Any]] = {}
    for code, entry in errors(*codes).items():
        entry = dict(entry)
        model = entry.pop("model")
        ref = f"#/components/schemas/{model.__name__}"
        entry["content"] = {"application/json": {"schema": {"$ref": ref}}}
        out[code] = entry
    return out


def _close_pattern_maps(node: Any) -> None:
    """pydantic writes ``dict[<str with a pattern>, V]`` as ``patternProperties``, which
    admits any other key with any value; the server rejects those keys, so say that."""
    if isinstance(node, list):
        for item in node:
            _close_pattern_maps(item)
        return
    if not isinstance(node, dict):
        return
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
        ((pattern, values),) = patterns.items()
        del node["patternProperties"]
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
        node["additionalProperties"] = values
    for value in node.values():
        _close_pattern_maps(value)


def install(app: FastAPI, *, title: str, version: str, description: str) -> None:
    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=title,
            version=version,
            description=description,
            routes=app.routes,
            servers=[{"url": "/api/v1"}],
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in BODY_MODELS.values():
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(js.pop("$defs", {}))
            schemas[model.__name__] = js
        _close_pattern_maps(schemas)
        components["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An `spci_` API token from POST /auth/tokens.",
            }
        }
        schema["security"] = [{"bearerAuth": []}]
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items():
                if (method.upper(), path) in PUBLIC or (None, path) in PUBLIC:
                    op["security"] = []
                else:
                    op.setdefault("responses", {}).setdefault(
                        "401",
                        {
                            "description": _DESCRIPTIONS[401],
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorBody"}
                                }
                            },
                        },
                    )
                for response in op.get("responses", {}).values():
                    response.setdefault("headers", {}).update(RATE_HEADERS)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
