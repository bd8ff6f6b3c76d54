"""The front of every dialect's pipeline, in the Sample Platform contract's order:

1. authenticate (a failure is remembered, not answered yet);
2. rate limit, keyed by token when step 1 succeeded, else by client IP → 429;
3. the remembered auth failure → 401;
then routing, where role, scope, path and body checks happen.
Every response gets the rate-limit and security headers. What differs per dialect
(public paths, bucket names, the error envelope) is a ``GatePolicy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runplane.api.rate_limits import Decision, RateLimiter
from runplane.api.security_headers import API_SECURITY_HEADERS, DOCS_CSP
from runplane.domain.types import Principal
from runplane.services import accounts
from runplane.services.context import Context

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class GateState:
    """Filled in by the app's lifespan; the gates read it per request."""

    ctx: Context | None = None
    limiter: RateLimiter | None = None


@dataclass(frozen=True)
class GatePolicy:
    """What one dialect's gate does differently."""

    #: Names the dialect's token-creation bucket (``{name}-token-create``); the read and
    #: write budgets are shared by all dialects, per token.
    name: str
    #: (method or None for any, path) that need no token.
    public: frozenset[tuple[str | None, str]]
    unauthorized: Callable[[], Response]
    #: The 429 answer; gets the decision and the headers to send.
    rate_limited: Callable[[Decision, dict[str, str]], Response]
    #: (method, path) of token creation, limited per IP with its own budget.
    token_create: tuple[str, str] | None = None

    def is_public(self, method: str, path: str) -> bool:
        return (method, path) in self.public or (None, path) in self.public


class Gate:
    def __init__(self, app: ASGIApp, state: GateState, policy: GatePolicy) -> None:
        self.app = app
        self.state = state
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx, limiter = self.state.ctx, self.state.limiter
        if ctx is None or limiter is None:
            raise RuntimeError("runplane runtime is not started")
        method: str = scope["method"]
        path: str = scope["path"][len(scope.get("root_path", "")) :] or "/"
        if scope.get("root_path") and not scope["path"].startswith(scope["root_path"]):
            path = scope["path"]
        headers = Headers(scope=scope)
        public = self.policy.is_public(method, path)

        principal: Principal | None = None
        auth_failed = False
        if not public:
            principal, auth_failed = await self._authenticate(ctx, headers.get("authorization"))

        decision = await self._rate_limit(ctx, limiter, method, path, principal, scope)
        extra = dict(API_SECURITY_HEADERS)
        if path.startswith("/docs"):
            extra["Content-Security-Policy"] = DOCS_CSP
        if decision is not None:
            extra.update(decision.headers())
            if not decision.allowed:
                extra["Retry-After"] = str(decision.retry_after)
                response = self.policy.rate_limited(decision, extra)
                await response(scope, receive, send)
                return
        if auth_failed or (not public and principal is None):
            response = self.policy.unauthorized()
            response.headers.update(extra)
            await response(scope, receive, send)
            return

        scope.setdefault("state", {})["principal"] = principal

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                mutable = MutableHeaders(scope=message)
                for key, value in extra.items():
                    if key not in mutable:
                        mutable[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _authenticate(
        self, ctx: Context, header: str | None
    ) -> tuple[Principal | None, bool]:
        if not header:
            return None, True
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return None, True
        try:
            return await accounts.authenticate(ctx, raw.strip()), False
        except accounts.AuthenticationFailed:
            return None, True

    async def _rate_limit(
        self,
        ctx: Context,
        limiter: RateLimiter,
        method: str,
        path: str,
        principal: Principal | None,
        scope: Scope,
    ) -> Decision | None:
        settings = ctx.settings
        if not settings.rate_limit_enabled:
            return None
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        if self.policy.token_create == (method, path):
            return await limiter.hit(
                f"{self.policy.name}-token-create",
                f"ip:{ip}",
                settings.rate_limit_token_create,
                settings.rate_limit_token_create_window_seconds,
            )
        # One budget per token across dialects: the same key, the same buckets.
        key = f"token:{principal.token_id}" if principal else f"ip:{ip}"
        if method in READ_METHODS:
            return await limiter.hit(
                "read", key, settings.rate_limit_reads, settings.rate_limit_window_seconds
            )
        return await limiter.hit(
            "write", key, settings.rate_limit_writes, settings.rate_limit_window_seconds
        )
