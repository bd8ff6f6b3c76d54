"""The dashboard's session: a signed, HttpOnly, SameSite=Lax cookie, and its CSRF token.

The cookie holds the user id, the user's session version (see
``accounts.session_principal``: a password or role change ends older sessions) and a
random CSRF token; a visitor who has not signed in yet gets a cookie with the token only
(the login form needs one too). It is signed with a key derived from the server's secret
key and expires ``SESSION_SECONDS`` after sign-in. Nothing in ``/api/v1`` or ``/ta``
reads it: the API stays token-only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "runplane_session"
#: A session ends this long after sign-in (the cookie is not refreshed).
SESSION_SECONDS = 12 * 3600
#: Field name of the CSRF token in every POST form.
CSRF_FIELD = "csrf_token"
_KEY_PURPOSE = b"runplane dashboard session cookie v1"


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    user_id: int | None = None
    version: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None and self.version is not None


def new_session(user_id: int | None = None, version: str | None = None) -> Session:
    return Session(csrf=secrets.token_urlsafe(32), user_id=user_id, version=version)


def signed_in(session: Session, user_id: int, version: str) -> Session:
    """The session after a sign-in: a new CSRF token too (nothing carries over)."""
    return replace(new_session(), user_id=user_id, version=version)


@lru_cache(maxsize=8)
def _serializer(secret_key: bytes) -> URLSafeTimedSerializer:
    key = hmac.new(secret_key, _KEY_PURPOSE, hashlib.sha256).digest()
    return URLSafeTimedSerializer(
        key, salt="runplane.dashboard.session", signer_kwargs={"digest_method": hashlib.sha256}
    )


def encode(secret_key: bytes, session: Session) -> str:
    payload: dict[str, Any] = {"c": session.csrf}
    if session.signed_in:
        payload.update(u=session.user_id, v=session.version)
    return str(_serializer(secret_key).dumps(payload))


def decode(secret_key: bytes, raw: str | None) -> Session | None:
    """The session in a cookie value; None when absent, tampered with, expired or malformed."""
    if not raw or len(raw) > 4096:
        return None
    try:
        payload = _serializer(secret_key).loads(raw, max_age=SESSION_SECONDS)
    except BadData:
        return None
    if not isinstance(payload, dict):
        return None
    csrf, user_id, version = payload.get("c"), payload.get("u"), payload.get("v")
    if not isinstance(csrf, str) or not csrf:
        return None
    if user_id is None and version is None:
        return Session(csrf)
    if type(user_id) is not int or not isinstance(version, str):
        return None
    return Session(csrf, user_id, version)


def read(request: Request, secret_key: bytes) -> Session | None:
    return decode(secret_key, request.cookies.get(COOKIE_NAME))


def write(response: Response, request: Request, secret_key: bytes, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        encode(secret_key, session),
        max_age=SESSION_SECONDS,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def clear(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def csrf_matches(session: Session | None, submitted: object) -> bool:
    """Constant-time check of a form's token against the session's."""
    if session is None or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())
