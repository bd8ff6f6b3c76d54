"""Signing in and out, and the signed-in user's API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from runplane.api.dashboard import sessions, views
from runplane.api.dashboard.deps import (
    CheckedForm,
    Ctx,
    CurrentSession,
    PageUser,
    form_text,
)
from runplane.api.dashboard.security import DashboardRoute, Problem, csrf_refused, safe_next
from runplane.api.rate_limits import RateLimiter
from runplane.domain.errors import DuplicateName, InvalidCredentials, PermissionDenied
from runplane.domain.permissions import DEFAULT_SCOPES, Scope, scopes_allowed_for
from runplane.domain.types import Principal
from runplane.services import accounts
from runplane.services.context import Context
from runplane.store.models import utcnow

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

TOKEN_DAYS_MAX = 365
TOKEN_DAYS_DEFAULT = 30


def _login_page(
    request: Request,
    session: sessions.Session,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    request.state.dashboard_session = session
    return views.render(
        request,
        "login.html",
        {"next_url": next_url, "email": email, "error": error, "title": "Sign in"},
        status_code=status_code,
    )


@router.get("/login")
async def login_form(
    request: Request,
    ctx: Ctx,
    session: CurrentSession,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    # A visitor gets a pre-session (a CSRF token, no user) for the form to carry.
    fresh = session is None
    session = session or sessions.new_session()
    response = _login_page(request, session, next_url=safe_next(next))
    if fresh:
        sessions.write(response, request, ctx.secret_key, session)
    return response


async def _within_login_budget(request: Request, ctx: Context) -> int | None:
    """Seconds to wait when this client tried to sign in too often (per IP), else None."""
    limiter: RateLimiter | None = getattr(request.app.state.dashboard_gate, "limiter", None)
    if limiter is None or not ctx.settings.rate_limit_enabled:
        return None
    client = request.client
    decision = await limiter.hit(
        "dashboard-login",
        f"ip:{client.host if client else 'unknown'}",
        ctx.settings.rate_limit_token_create,
        ctx.settings.rate_limit_token_create_window_seconds,
    )
    return decision.retry_after if decision is not None and not decision.allowed else None


@router.post("/login")
async def login(request: Request, ctx: Ctx, session: CurrentSession, form: CheckedForm) -> Response:
    if session is None:  # pragma: no cover - checked_form refused it already
        raise csrf_refused()
    email = form_text(form, "email", 255)
    password = form.get("password")
    next_url = safe_next(form.get("next"))
    wait = await _within_login_budget(request, ctx)
    if wait is not None:
        raise Problem(
            429,
            "Too many attempts",
            f"Too many sign-in attempts from this address. Try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    try:
        if not email or not isinstance(password, str) or not password:
            raise InvalidCredentials("Enter your email and password.")
        grant = await accounts.authenticate_password(ctx, email, password[:1024])
    except InvalidCredentials as exc:
        return _login_page(
            request, session, next_url=next_url, email=email, error=exc.message, status_code=400
        )
    signed = sessions.signed_in(session, grant.principal.user_id, grant.session_version)
    response = RedirectResponse(next_url, status_code=303)
    sessions.write(response, request, ctx.secret_key, signed)
    return response


@router.post("/logout")
async def logout(request: Request, form: CheckedForm) -> Response:
    response = RedirectResponse("/login", status_code=303)
    sessions.clear(response, request)
    return response


def _token_scopes(principal: Principal) -> list[Scope]:
    allowed = scopes_allowed_for(principal.role)
    return [s for s in Scope if s in allowed]


async def _tokens_page(
    request: Request,
    ctx: Context,
    principal: Principal,
    *,
    created: accounts.IssuedToken | None = None,
    error: str | None = None,
    form: dict[str, object] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    rows = await accounts.tokens_of_user(ctx, principal.user_id)
    tokens = [(row, accounts.token_state(row, now)) for row in reversed(rows)]
    return views.render(
        request,
        "tokens.html",
        {
            "title": "API tokens",
            "nav": "tokens",
            "tokens": tokens,
            "scopes": _token_scopes(principal),
            "default_scopes": [s.value for s in DEFAULT_SCOPES],
            "created": created,
            "error": error,
            "form": form or {},
            "notice": notice,
            "days_max": TOKEN_DAYS_MAX,
            "days_default": TOKEN_DAYS_DEFAULT,
        },
        status_code=status_code,
    )


@router.get("/tokens")
async def tokens(
    request: Request,
    ctx: Ctx,
    principal: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    notice = "The token was revoked; it no longer works." if done == "revoked" else None
    return await _tokens_page(request, ctx, principal, notice=notice)


@router.post("/tokens")
async def create_token(
    request: Request, ctx: Ctx, principal: PageUser, form: CheckedForm
) -> Response:
    name = form_text(form, "name", 100)
    chosen = [str(v) for v in form.getlist("scopes")]
    days_text = form_text(form, "expires_in_days", 10) or str(TOKEN_DAYS_DEFAULT)
    echo: dict[str, object] = {"name": name, "scopes": chosen, "expires_in_days": days_text}
    problem = None
    known = {s.value for s in Scope}
    if not name or len(name) > 50:
        problem = "Give the token a name of 1 to 50 characters."
    elif not chosen or any(c not in known for c in chosen):
        problem = "Choose at least one scope."
    elif not days_text.isdigit() or not 1 <= int(days_text) <= TOKEN_DAYS_MAX:
        problem = f"The token must expire in 1 to {TOKEN_DAYS_MAX} days."
    if problem is not None:
        return await _tokens_page(
            request, ctx, principal, error=problem, form=echo, status_code=400
        )
    try:
        issued = await accounts.issue_for_email(
            ctx, principal.email, name, [Scope(c) for c in chosen], int(days_text)
        )
    except (DuplicateName, PermissionDenied) as exc:
        return await _tokens_page(
            request, ctx, principal, error=exc.message, form=echo, status_code=400
        )
    return await _tokens_page(request, ctx, principal, created=issued)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    ctx: Ctx,
    principal: PageUser,
    form: CheckedForm,
    token_id: Annotated[int, Path(ge=1, le=2147483647)],
) -> Response:
    own = {row.id for row in await accounts.tokens_of_user(ctx, principal.user_id)}
    if token_id not in own:
        # This page manages the user's own tokens only (admins use the API for others').
        raise Problem(404, "Not found", f"You have no token {token_id}.")
    await accounts.revoke(ctx, principal, token_id)
    return RedirectResponse("/tokens?done=revoked", status_code=303)
