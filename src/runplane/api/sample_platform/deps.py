"""FastAPI dependencies of the Sample Platform dialect: context, permissions, bodies, pages."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ValidationError

from runplane.api.request_context import Ctx as Ctx
from runplane.api.request_context import CurrentPrincipal
from runplane.api.sample_platform.errors import validation_details
from runplane.domain.errors import InvalidInput, MissingScope
from runplane.domain.permissions import ACTION_ROLES, Action, Scope
from runplane.domain.types import Principal
from runplane.services.policy import ensure_allowed

M = TypeVar("M", bound=BaseModel)


class BodyRejected(Exception):
    """A request body that is not JSON, or not the right JSON."""

    def __init__(self, status: int, message: str, fields: dict[str, list[str]]) -> None:
        self.status_code = status
        self.message = message
        self.fields = fields


def require(scope: Scope | None, action: Action | None = None) -> Callable[..., Principal]:
    """Roles first (when the action lists them), then the scope: the contract's order."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if action is not None:
            ensure_allowed(principal, action)
        if scope is not None and scope not in principal.scopes:
            raise MissingScope([scope.value], [s.value for s in principal.scopes])
        return principal

    dependency.__name__ = f"require_{scope.value if scope else 'auth'}".replace(":", "_")
    return dependency


RunsRead = Annotated[Principal, Depends(require(Scope.RUNS_READ))]
RunsWrite = Annotated[Principal, Depends(require(Scope.RUNS_WRITE))]
RunControl = Annotated[Principal, Depends(require(Scope.RUNS_WRITE, Action.CANCEL_RUN))]
ResultsRead = Annotated[Principal, Depends(require(Scope.RESULTS_READ))]
SystemRead = Annotated[Principal, Depends(require(Scope.SYSTEM_READ))]
ProjectAdmin = Annotated[Principal, Depends(require(Scope.SYSTEM_WRITE, Action.MANAGE_PROJECTS))]
TokenAdmin = Annotated[Principal, Depends(require(Scope.TOKENS_MANAGE, Action.MANAGE_TOKENS))]
Authenticated = Annotated[Principal, Depends(require(None))]
SuiteWrite = Annotated[Principal, Depends(require(Scope.RUNS_WRITE, Action.EDIT_SUITE))]
BaselineWrite = Annotated[
    Principal, Depends(require(Scope.BASELINES_WRITE, Action.APPROVE_BASELINE))
]

assert ACTION_ROLES[Action.CANCEL_RUN] == ACTION_ROLES[Action.RETRY_RUN]  # RunControl covers both


#: What ``read_json`` returns for an empty optional body (JSON ``null`` is a body).
NO_BODY: Any = object()


def _json_number(text: str) -> int | float:
    """JSON has one number type; as in JSON Schema, ``25.0`` is an integer."""
    value = float(text)
    return int(value) if value.is_integer() else value


async def read_json(request: Request, *, required: bool) -> Any:
    """The body as JSON; ``NO_BODY`` when optional and empty. 415/400 as the contract says."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BodyRejected(400, "Request body must be valid JSON.", {"body": ["Required."]})
        return NO_BODY
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise BodyRejected(415, "Content-Type must be application/json.", {})
    try:
        # Integral numbers as int, so the strict body models take 25.0 for an integer.
        return json.loads(raw, parse_float=_json_number)
    except (ValueError, UnicodeDecodeError):
        raise BodyRejected(400, "Request body must be valid JSON.", {}) from None


def json_body(model: type[M], *, required: bool = True) -> Callable[[Request], Awaitable[M | None]]:
    """Parse and validate a body *after* the permission dependencies have run.

    FastAPI would read a declared body before any dependency, which puts body
    errors ahead of 403s; the contract wants them after.
    """

    async def dependency(request: Request) -> M | None:
        data = await read_json(request, required=required)
        if data is NO_BODY:
            return None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            _, fields = validation_details(errors)
            raise BodyRejected(400, "Request failed schema validation.", fields) from None

    return dependency


#: Every model named by ``body_openapi``; the OpenAPI builder adds them to components.
BODY_MODELS: dict[str, type[BaseModel]] = {}


def body_openapi(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body that ``json_body`` parses."""
    BODY_MODELS[model.__name__] = model
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


@dataclass(frozen=True, slots=True)
class OffsetPage:
    limit: int
    offset: int


def offset_page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=2147483647, description="Rows to skip.")] = 0,
) -> OffsetPage:
    if "cursor" in request.query_params:
        raise InvalidInput(
            "Cannot mix cursor and offset pagination.",
            {"cursor": "Not supported on this endpoint."},
        )
    return OffsetPage(limit=limit, offset=offset)


Page = Annotated[OffsetPage, Depends(offset_page)]


def page_slice(items: list[Any], page: OffsetPage, **meta: Any) -> dict[str, Any]:
    """The offset page of a list computed in full (small per-run lists)."""
    return page_envelope(items[page.offset : page.offset + page.limit], page, len(items), **meta)


def page_envelope(items: list[Any], page: OffsetPage, total: int, **meta: Any) -> dict[str, Any]:
    next_offset = page.offset + page.limit
    return {
        "data": items,
        "pagination": {
            "limit": page.limit,
            "offset": page.offset,
            "total": total,
            "next_offset": next_offset if next_offset < total else None,
        },
        "meta": meta,
    }


def utc_range(
    after: datetime | None, before: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``created_after``/``created_before`` as UTC (naive means UTC); 400 if reversed."""

    def utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    after, before = utc(after), utc(before)
    if after and before and after > before:
        raise InvalidInput(
            "created_after cannot be later than created_before.",
            {"created_after": "Must not be later than created_before."},
        )
    return after, before
