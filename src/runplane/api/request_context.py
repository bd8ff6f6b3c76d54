"""Dependencies every dialect shares: the service context and the gate's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from runplane.domain.types import Principal
from runplane.services.context import Context


def get_ctx(request: Request) -> Context:
    ctx: Context | None = request.app.state.gate.ctx
    if ctx is None:
        raise RuntimeError("runplane runtime is not started")
    return ctx


def current_principal(request: Request) -> Principal:
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:
        # The gate answers 401 before routing; reaching here is a bug.
        raise RuntimeError("route reached without a principal")
    return principal


Ctx = Annotated[Context, Depends(get_ctx)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
