"""What every dashboard response gets: security headers, a strict CSP, and error pages.

``DashboardRoute`` is the route class of every dashboard route: it turns sign-in
requirements, refused forms and domain errors into HTML answers (the API's JSON
envelope is for API clients) and adds the headers to whatever the route answered.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runplane.api.dashboard import sessions, views
from runplane.api.security_headers import API_SECURITY_HEADERS
from runplane.domain.errors import (
    Conflict,
    InvalidCredentials,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RunplaneError,
    UsageLimitExceeded,
)

#: Scripts, styles, images and fetches from this origin only; no inline code, no frames.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DASHBOARD_HEADERS: dict[str, str] = {
    **API_SECURITY_HEADERS,
    "Content-Security-Policy": DASHBOARD_CSP,
    "Referrer-Policy": "same-origin",
}


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, fetches get a 401."""

    def __init__(self, *, redirect: bool, clear_cookie: bool = False) -> None:
        super().__init__("sign-in required")
        self.redirect = redirect
        self.clear_cookie = clear_cookie


class Problem(Exception):
    """An answer the dashboard gives as an error page."""

    def __init__(
        self, status_code: int, title: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message
        self.headers = dict(headers or {})


def csrf_refused() -> Problem:
    return Problem(
        403,
        "Request refused",
        "This form's security token is missing or does not match your session. "
        "Reload the page and try again.",
    )


def next_path(request: Request) -> str:
    """Where to come back after signing in: this page, if it is a page."""
    if request.method != "GET":
        return "/"
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


def safe_next(value: object) -> str:
    """A local path to redirect to after sign-in; anything else becomes ``/``."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.startswith(("//", "/\\", "/login"))
        or any(c in value for c in "\\\r\n\t")
        or len(value) > 2000
    ):
        return "/"
    return value


def _problem_page(request: Request, problem: Problem) -> Response:
    return views.render(
        request,
        "error.html",
        {"title": problem.title, "message": problem.message},
        status_code=problem.status_code,
        headers=problem.headers,
    )


def _sign_in(request: Request, exc: SignInRequired) -> Response:
    response: Response
    if exc.redirect:
        target = "/login"
        wanted = next_path(request)
        if wanted != "/":
            target += "?next=" + quote(wanted, safe="/")
        response = RedirectResponse(target, status_code=303)
    else:
        response = Response("Sign in to see this.", status_code=401, media_type="text/plain")
    if exc.clear_cookie:
        sessions.clear(response, request)
    return response


def _domain_problem(exc: RunplaneError) -> Problem:
    if isinstance(exc, NotFound):
        return Problem(404, "Not found", exc.message)
    if isinstance(exc, PermissionDenied):
        return Problem(403, "Not allowed", exc.message)
    if isinstance(exc, InvalidCredentials):
        return Problem(401, "Not signed in", exc.message)
    if isinstance(exc, Conflict):
        return Problem(409, "Not possible now", exc.message)
    if isinstance(exc, UsageLimitExceeded):
        return Problem(429, "Limit reached", exc.message)
    if isinstance(exc, PayloadTooLarge):
        return Problem(413, "Too large", exc.message)
    return Problem(422, "Not possible", exc.message)


def add_headers(headers: MutableHeaders) -> None:
    for key, value in DASHBOARD_HEADERS.items():
        if key not in headers:
            headers[key] = value
    if "cache-control" not in headers:
        # Pages show tokens, logs and results: keep them out of shared caches and history.
        headers["Cache-Control"] = "no-store"


class DashboardRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = _sign_in(request, exc)
            except Problem as exc:
                response = _problem_page(request, exc)
            except RequestValidationError as exc:
                in_path = any(e.get("loc", ("",))[0] == "path" for e in exc.errors())
                response = _problem_page(
                    request,
                    Problem(404, "Not found", "There is no such page.")
                    if in_path
                    else Problem(400, "Bad request", "Some of the request's values are invalid."),
                )
            except RunplaneError as exc:
                response = _problem_page(request, _domain_problem(exc))
            add_headers(response.headers)
            return response

        return guarded


class WithDashboardHeaders:
    """ASGI wrapper giving the static files the same headers (they may be cached)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in DASHBOARD_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "public, max-age=300"
            await send(message)

        await self.app(scope, receive, send_with_headers)
