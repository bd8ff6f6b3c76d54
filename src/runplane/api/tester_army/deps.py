"""FastAPI dependencies of the Tester Army dialect: permissions, cursors, list limits."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends

from runplane.api.request_context import Ctx as Ctx
from runplane.api.request_context import CurrentPrincipal
from runplane.api.tester_army.errors import DialectError
from runplane.domain.errors import MissingScope
from runplane.domain.permissions import Action, Scope
from runplane.domain.types import Principal
from runplane.services.policy import ensure_allowed


def require(scope: Scope, action: Action | None = None) -> Callable[..., Principal]:
    """Tester Army keys carry no scopes of their own; runplane tokens do, and they hold here."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if action is not None:
            ensure_allowed(principal, action)
        if scope not in principal.scopes:
            raise MissingScope([scope.value], [s.value for s in principal.scopes])
        return principal

    dependency.__name__ = f"ta_require_{scope.value}".replace(":", "_")
    return dependency


RunsRead = Annotated[Principal, Depends(require(Scope.RUNS_READ))]
RunSubmit = Annotated[Principal, Depends(require(Scope.RUNS_WRITE, Action.SUBMIT_RUN))]
RunControl = Annotated[Principal, Depends(require(Scope.RUNS_WRITE, Action.CANCEL_RUN))]
SuiteWrite = Annotated[Principal, Depends(require(Scope.RUNS_WRITE, Action.EDIT_SUITE))]


def encode_cursor(position: Any) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    """The position a cursor names; 400 for anything we did not hand out."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DialectError(400, "ValidationError", "cursor: Invalid cursor") from None
