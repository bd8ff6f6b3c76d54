"""Dependencies of the dashboard's routes: the service context, the session and its user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from runplane.api.dashboard import sessions
from runplane.api.dashboard.security import SignInRequired, csrf_refused
from runplane.domain.types import Principal
from runplane.services import accounts
from runplane.services.context import Context

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def get_ctx(request: Request) -> Context:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("runplane runtime is not started")
    ctx: Context = runtime.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]


async def current_session(request: Request, ctx: Ctx) -> sessions.Session | None:
    """The request's session cookie (signed in or not), remembered for the templates."""
    session = sessions.read(request, ctx.secret_key)
    request.state.dashboard_session = session
    return session


CurrentSession = Annotated[sessions.Session | None, Depends(current_session)]


async def _principal(
    request: Request, ctx: Context, session: sessions.Session | None, *, redirect: bool
) -> Principal:
    if session is None or session.user_id is None or session.version is None:
        raise SignInRequired(redirect=redirect, clear_cookie=session is not None)
    try:
        principal = await accounts.session_principal(ctx, session.user_id, session.version)
    except accounts.AuthenticationFailed:
        raise SignInRequired(redirect=redirect, clear_cookie=True) from None
    request.state.principal = principal
    return principal


async def page_user(request: Request, ctx: Ctx, session: CurrentSession) -> Principal:
    """The signed-in user of a page; without one, a redirect to the sign-in form."""
    return await _principal(request, ctx, session, redirect=True)


async def fetch_user(request: Request, ctx: Ctx, session: CurrentSession) -> Principal:
    """The signed-in user of a partial, a stream or an image; without one, a 401."""
    return await _principal(request, ctx, session, redirect=False)


PageUser = Annotated[Principal, Depends(page_user)]
FetchUser = Annotated[Principal, Depends(fetch_user)]


async def checked_form(request: Request, session: CurrentSession) -> FormData:
    """The POSTed form, once its CSRF token matched the session's (else a 403 page)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = (
        await request.form(max_files=0, max_fields=64)
        if content_type in _FORM_TYPES
        else FormData()
    )
    if not sessions.csrf_matches(session, form.get(sessions.CSRF_FIELD)):
        raise csrf_refused()
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def form_text(form: FormData, name: str, max_length: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:max_length] if isinstance(value, str) else ""
