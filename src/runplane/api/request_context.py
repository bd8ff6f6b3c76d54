"""Dependencies every dialect shares: the service context and the gate's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.routing import compile_path

from runplane.domain.types import Principal
from runplane.services.context import Context

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


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


def allow_header(app: FastAPI, request: Request, alias: str = "") -> dict[str, str]:
    """``Allow`` with every documented method of the request's path in the dialect ``app``
    (Starlette names only the methods of the first route that matched the path).

    ``alias`` is a path prefix served like the documented one (``/api`` before ``/v1``).
    """
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root) :] if root and path.startswith(root) else path
    if alias and path.startswith(alias + "/"):
        path = path[len(alias) :]
    # The most specific documented paths win: /samples/upload, not /samples/{sample_id}.
    matches: dict[int, set[str]] = {}
    for template, item in app.openapi().get("paths", {}).items():
        regex, _, params = compile_path(template)
        if regex.match(path):
            found = matches.setdefault(len(params), set())
            found |= {m.upper() for m in item} & _HTTP_METHODS
    methods = matches[min(matches)] if matches else set()
    if "GET" in methods:
        methods.add("HEAD")
    return {"Allow": ", ".join(sorted(methods))} if methods else {}
