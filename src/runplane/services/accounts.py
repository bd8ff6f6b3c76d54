"""Users, passwords and API tokens.

Tokens are ``spci_`` (or, for Tester Army clients, ``sk_``) + 43 URL-safe characters.
Only an HMAC-SHA256 of the token (keyed with the server secret) is stored, plus its
first 16 characters to find the row; verification compares digests in constant time.
The raw token is returned once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from runplane.domain.errors import (
    Conflict,
    DuplicateName,
    InvalidCredentials,
    TokenNotFound,
    UserNotFound,
)
from runplane.domain.errors import (
    ScopeNotAllowed as ScopeNotAllowedError,
)
from runplane.domain.permissions import DEFAULT_SCOPES, Role, Scope, scopes_allowed_for
from runplane.domain.types import Principal
from runplane.services.context import Context
from runplane.store import accounts as store
from runplane.store.database import unit_of_work
from runplane.store.models import ApiToken, User, utcnow

TOKEN_PREFIX = "spci_"
#: Keys issued for the Tester Army dialect look like theirs; same table, same checks.
TESTER_ARMY_PREFIX = "sk_"
ALT_TOKEN_PREFIXES = (TESTER_ARMY_PREFIX,)
LOOKUP_CHARS = 16
_hasher = PasswordHasher()
# A fixed hash to verify against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("runplane-timing-equaliser")


class AuthenticationFailed(Exception):
    """The presented token is missing, malformed, unknown, expired or revoked."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    row: ApiToken


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(secret_key: bytes, raw: str) -> str:
    return hmac.new(secret_key, raw.encode(), hashlib.sha256).hexdigest()


def principal_of(user: User, token: ApiToken | None) -> Principal:
    return Principal(
        user_id=user.id,
        email=user.email,
        role=Role(user.role),
        scopes=frozenset(Scope(s) for s in token.scopes) if token else frozenset(Scope),
        token_id=token.id if token else None,
    )


async def create_user(ctx: Context, email: str, password: str, role: Role) -> User:
    async with unit_of_work(ctx.sessions) as session:
        if await store.get_user_by_email(session, email):
            raise Conflict(f"A user with email {email} already exists.")
        user = User(email=email.lower(), password_hash=hash_password(password), role=role.value)
        await store.add(session, user)
        return user


async def _issue(
    ctx: Context,
    user: User,
    name: str,
    scopes: Iterable[Scope],
    expires_in_days: int,
    prefix: str = TOKEN_PREFIX,
) -> IssuedToken:
    async with unit_of_work(ctx.sessions) as session:
        if await store.token_name_taken(session, user.id, name):
            raise DuplicateName(f"A token named {name!r} already exists for this user.")
        raw = prefix + secrets.token_urlsafe(32)
        row = ApiToken(
            user_id=user.id,
            name=name,
            prefix=raw[:LOOKUP_CHARS],
            token_hash=token_digest(ctx.secret_key, raw),
            scopes=sorted({s.value for s in scopes}),
            expires_at=utcnow() + timedelta(days=expires_in_days),
        )
        try:
            await store.add(session, row)
        except IntegrityError:
            # Two requests raced past the check above; the unique constraint decided.
            raise DuplicateName(f"A token named {name!r} already exists for this user.") from None
        return IssuedToken(token=raw, row=row)


def _check_scopes(role: Role, scopes: Iterable[Scope]) -> list[Scope]:
    wanted = list(dict.fromkeys(scopes))
    denied = [s.value for s in wanted if s not in scopes_allowed_for(role)]
    if denied:
        raise ScopeNotAllowedError(role.value, denied)
    return wanted


async def _user_with_password(ctx: Context, email: str, password: str) -> User:
    """The user ``email`` if ``password`` is theirs; an unknown email costs the same time."""
    async with unit_of_work(ctx.reads) as session:
        user = await store.get_user_by_email(session, email)
    if user is None:
        _verify_password(_DUMMY_HASH, password)
        raise InvalidCredentials("Email or password is incorrect.")
    if not _verify_password(user.password_hash, password):
        raise InvalidCredentials("Email or password is incorrect.")
    return user


async def login_and_issue(
    ctx: Context,
    email: str,
    password: str,
    name: str,
    scopes: Sequence[Scope] | None,
    expires_in_days: int,
) -> IssuedToken:
    """Exchange email + password for a new token (``POST /auth/tokens``)."""
    user = await _user_with_password(ctx, email, password)
    chosen = _check_scopes(Role(user.role), scopes if scopes is not None else DEFAULT_SCOPES)
    return await _issue(ctx, user, name, chosen, expires_in_days)


async def issue_for_email(
    ctx: Context,
    email: str,
    name: str,
    scopes: Sequence[Scope],
    expires_in_days: int,
    *,
    prefix: str = TOKEN_PREFIX,
) -> IssuedToken:
    """Operator path (CLI): no password, but the same role/scope rules."""
    async with unit_of_work(ctx.reads) as session:
        user = await store.get_user_by_email(session, email)
    if user is None:
        raise UserNotFound(email)
    if prefix not in (TOKEN_PREFIX, *ALT_TOKEN_PREFIXES):
        raise ValueError(f"unknown token prefix {prefix!r}")
    chosen = _check_scopes(Role(user.role), scopes)
    return await _issue(ctx, user, name, chosen, expires_in_days, prefix)


async def authenticate(ctx: Context, raw: str) -> Principal:
    """The principal behind a raw token, or ``AuthenticationFailed``."""
    if not raw.startswith((TOKEN_PREFIX, *ALT_TOKEN_PREFIXES)) or len(raw) > 512:
        raise AuthenticationFailed
    digest = token_digest(ctx.secret_key, raw)
    now = utcnow()
    async with unit_of_work(ctx.reads) as session:
        match: ApiToken | None = None
        for row in await store.tokens_with_prefix(session, raw[:LOOKUP_CHARS]):
            if hmac.compare_digest(row.token_hash, digest):
                match = row
        if match is None or match.revoked_at is not None or match.expires_at <= now:
            raise AuthenticationFailed
        user = await store.get_user(session, match.user_id)
    if user is None:
        raise AuthenticationFailed
    # Writing last_used_at on every request would serialise all reads on SQLite.
    if match.last_used_at is None or now - match.last_used_at > timedelta(minutes=1):
        async with unit_of_work(ctx.sessions) as session:
            await store.touch_token(session, match.id, now)
    return principal_of(user, match)


async def revoke(ctx: Context, actor: Principal, token_id: int) -> None:
    """Revoke one of the actor's tokens (admins may revoke any); others see 404."""
    async with unit_of_work(ctx.sessions) as session:
        row = await store.get_token(session, token_id)
        if row is None or (row.user_id != actor.user_id and actor.role is not Role.ADMIN):
            raise TokenNotFound(token_id)
        await store.revoke_token(session, token_id, utcnow())


async def list_tokens(
    ctx: Context, *, limit: int, offset: int
) -> tuple[Sequence[tuple[ApiToken, str]], int]:
    """Every token with its owner's email (never the secret)."""
    async with unit_of_work(ctx.reads) as session:
        rows, total = await store.list_tokens(session, limit=limit, offset=offset)
        out = []
        for row in rows:
            user = await store.get_user(session, row.user_id)
            out.append((row, user.email if user else ""))
        return out, total


def token_state(row: ApiToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= now else "active"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A password sign-in (the dashboard): who, and the version a session cookie records."""

    principal: Principal
    session_version: str


def _session_principal(user: User) -> Principal:
    # A session is no token: it holds what the user's role may hold.
    return Principal(
        user_id=user.id,
        email=user.email,
        role=Role(user.role),
        scopes=scopes_allowed_for(Role(user.role)),
    )


def _session_version(secret_key: bytes, user: User) -> str:
    """Changes when the user's password or role changes, which ends older sessions."""
    material = f"session:{user.id}:{user.role}:{user.password_hash}".encode()
    return hmac.new(secret_key, material, hashlib.sha256).hexdigest()[:24]


async def authenticate_password(ctx: Context, email: str, password: str) -> SignedIn:
    """Check email + password (unknown emails cost the same); ``InvalidCredentials`` if wrong."""
    user = await _user_with_password(ctx, email, password)
    return SignedIn(_session_principal(user), _session_version(ctx.secret_key, user))


async def session_principal(ctx: Context, user_id: int, version: str) -> Principal:
    """The principal of a session cookie; ``AuthenticationFailed`` once it no longer holds."""
    async with unit_of_work(ctx.reads) as session:
        user = await store.get_user(session, user_id)
    if user is None or not hmac.compare_digest(_session_version(ctx.secret_key, user), version):
        raise AuthenticationFailed
    return _session_principal(user)


async def tokens_of_user(ctx: Context, user_id: int) -> list[ApiToken]:
    """The user's own tokens, oldest first (never the secret)."""
    async with unit_of_work(ctx.reads) as session:
        return list(await store.tokens_of_user(session, user_id))
