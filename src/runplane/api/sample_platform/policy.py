"""How the gate treats the Sample Platform dialect: public paths and its error envelope."""

from __future__ import annotations

from starlette.responses import Response

from runplane.api.gate import GatePolicy
from runplane.api.rate_limits import Decision
from runplane.api.sample_platform.errors import error_response, unauthorized

TOKEN_CREATE_PATH = "/auth/tokens"
PUBLIC: frozenset[tuple[str | None, str]] = frozenset(
    {
        ("POST", TOKEN_CREATE_PATH),
        ("GET", "/system/health"),
        ("HEAD", "/system/health"),
        (None, "/openapi.json"),
        (None, "/docs"),
        (None, "/docs/oauth2-redirect"),
    }
)


def _rate_limited(decision: Decision, headers: dict[str, str]) -> Response:
    n = decision.retry_after
    return error_response(
        429,
        "rate_limited",
        f"Rate limit exceeded. Retry after {n} seconds.",
        {"retry_after": n, "limit": decision.limit, "window": f"{decision.window_seconds}s"},
        headers=headers,
    )


SAMPLE_PLATFORM_GATE = GatePolicy(
    name="sp",
    public=PUBLIC,
    unauthorized=unauthorized,
    rate_limited=_rate_limited,
    token_create=("POST", TOKEN_CREATE_PATH),
)
