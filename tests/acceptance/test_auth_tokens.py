"""``/auth/tokens`` over HTTP (contract A.2, A.1 bodies, A.5 errors): issue, use, list, revoke."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from runplane.config import Settings
from runplane.domain.permissions import ALL_SCOPES, Role, Scope
from runplane.services import accounts
from runplane.store.database import unit_of_work
from runplane.store.models import ApiToken, utcnow
from tests.conftest import Api

URL = "/api/v1/auth/tokens"
PASSWORD = "password123"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOKEN = re.compile(r"^spci_[A-Za-z0-9_-]{43}$")
BAD_CREDENTIALS = {
    "code": "invalid_credentials",
    "message": "Email or password is incorrect.",
    "details": {},
}
UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Bearer token is missing, expired, or invalid.",
    "details": {},
}


async def _user(api: Api, role: Role = Role.USER, email: str | None = None) -> str:
    email = email or f"{role.value}-tokens@example.com"
    await accounts.create_user(api.ctx, email, PASSWORD, role)
    return email


async def _create(api: Api, email: str, name: str = "ci", **extra: Any) -> httpx.Response:
    body = {"email": email, "password": PASSWORD, "token_name": name, **extra}
    return await api.client.post(URL, json=body)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _when(value: str) -> datetime:
    assert DATETIME.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def _me(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/api/v1/auth/me", headers=_bearer(token))


# ---- POST /auth/tokens ----------------------------------------------------------------------


async def test_create_returns_the_token_once_with_defaults(api_no_workers: Api) -> None:
    api = api_no_workers
    email = await _user(api)
    before = datetime.now(UTC)
    response = await _create(api, email, "laptop")
    assert response.status_code == 201, response.text
    body = response.json()
    assert {"token", "token_type", "token_name", "scopes", "expires_at"} <= body.keys()
    assert TOKEN.match(body["token"]) and len(body["token"]) == 48
    assert body["token_type"] == "Bearer"
    assert body["token_name"] == "laptop"
    assert sorted(body["scopes"]) == ["results:read", "runs:read"]
    expires = _when(body["expires_at"])
    assert before + timedelta(days=30, seconds=-2) <= expires
    assert expires <= datetime.now(UTC) + timedelta(days=30, seconds=1)

    me = await _me(api, body["token"])
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email and me.json()["role"] == "user"
    assert me.json()["token_scopes"] == ["results:read", "runs:read"]


async def test_create_with_scopes_and_the_longest_expiry(api_no_workers: Api) -> None:
    api = api_no_workers
    email = await _user(api, Role.CONTRIBUTOR)
    response = await _create(
        api, email, "ci-bot", scopes=["runs:write", "system:read"], expires_in_days=90
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert sorted(body["scopes"]) == ["runs:write", "system:read"]
    expected = datetime.now(UTC) + timedelta(days=90)
    assert abs((_when(body["expires_at"]) - expected).total_seconds()) < 5

    one_day = await _create(api, email, "short", expires_in_days=1)
    assert one_day.status_code == 201, one_day.text
    expected = datetime.now(UTC) + timedelta(days=1)
    assert abs((_when(one_day.json()["expires_at"]) - expected).total_seconds()) < 5


async def test_admin_may_request_every_scope(api_no_workers: Api) -> None:
    api = api_no_workers
    email = await _user(api, Role.ADMIN)
    every = sorted(s.value for s in ALL_SCOPES)
    response = await _create(api, email, scopes=every)
    assert response.status_code == 201, response.text
    assert sorted(response.json()["scopes"]) == every


async def test_non_admin_asking_for_admin_scopes_is_403(api_no_workers: Api) -> None:
    """(Every non-admin role and admin-only scope: test_auth_matrix.)"""
    api = api_no_workers
    role = Role.TESTER
    email = await _user(api, role)
    response = await _create(api, email, scopes=["runs:read", "system:write"])
    assert response.status_code == 403, response.text
    assert response.json() == {
        "code": "forbidden",
        "message": f"Your current role ({role.value}) does not permit requesting the "
        "following scopes: system:write",
        "details": {"disallowed_scopes": ["system:write"]},
    }
    # Nothing was issued under that name.
    assert (await _create(api, email, scopes=["runs:read"])).status_code == 201


@pytest.mark.parametrize("days", [91, 0, -1, 365])
async def test_expiry_out_of_range_is_400(api_no_workers: Api, days: int) -> None:
    # Validation comes before the credentials are checked: no user needed.
    response = await _create(api_no_workers, "a@example.com", expires_in_days=days)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["message"] == "Request failed schema validation."
    assert "expires_in_days" in body["details"]["fields"]


async def test_wrong_password_and_unknown_email_are_the_same_401(api_no_workers: Api) -> None:
    api = api_no_workers
    email = await _user(api)
    wrong = await api.client.post(
        URL, json={"email": email, "password": "not-the-password", "token_name": "x"}
    )
    unknown = await api.client.post(
        URL, json={"email": "nobody@example.com", "password": PASSWORD, "token_name": "x"}
    )
    # Credentials are checked before the requested scopes (no hint about the role).
    wrong_with_scope = await api.client.post(
        URL,
        json={
            "email": email,
            "password": "not-the-password",
            "token_name": "x",
            "scopes": ["tokens:manage"],
        },
    )
    for response in (wrong, unknown, wrong_with_scope):
        assert response.status_code == 401, response.text
        assert response.json() == BAD_CREDENTIALS


async def test_email_is_case_insensitive(api_no_workers: Api) -> None:
    api = api_no_workers
    await _user(api, email="Mixed.Case@Example.com")
    response = await _create(api, "MIXED.case@example.COM")
    assert response.status_code == 201, response.text


async def test_duplicate_token_name_is_400_even_after_revocation(api_no_workers: Api) -> None:
    api = api_no_workers
    email = await _user(api)
    first = await _create(api, email, "build")
    assert first.status_code == 201
    again = await _create(api, email, "build")
    assert again.status_code == 400, again.text
    body = again.json()
    assert body["code"] == "validation_error"
    assert "token_name" in body["details"]["fields"]

    # Another user may use the same name.
    other = await _user(api, email="other@example.com")
    assert (await _create(api, other, "build")).status_code == 201

    revoked = await api.client.delete(f"{URL}/current", headers=_bearer(first.json()["token"]))
    assert revoked.status_code == 204
    assert (await _create(api, email, "build")).status_code == 400


async def test_wrong_content_type_is_415(api_no_workers: Api) -> None:
    api = api_no_workers
    email = await _user(api)
    payload = f'{{"email": "{email}", "password": "{PASSWORD}", "token_name": "x"}}'.encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await api.client.post(URL, content=payload, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert response.json() == {
            "code": "validation_error",
            "message": "Content-Type must be application/json.",
            "details": {},
        }
    ok = await api.client.post(
        URL, content=payload, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"email": }', b"\xff\xfe", b""])
async def test_invalid_json_is_400(api_no_workers: Api, raw: bytes) -> None:
    response = await api_no_workers.client.post(
        URL, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["message"] == "Request body must be valid JSON."


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"admin": True}, "admin"),  # unknown field
        ({"token_name": None}, "token_name"),
        ({"token_name": ""}, "token_name"),
        ({"token_name": "has space"}, "token_name"),
        ({"token_name": "n" * 51}, "token_name"),
        ({"password": "short"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"scopes": ["runs:read", "everything"]}, "scopes.1"),
        ({"scopes": ["runs:read"] * 9}, "scopes"),
        ({"expires_in_days": "soon"}, "expires_in_days"),
    ],
)
async def test_schema_failures_are_400_with_fields(
    api_no_workers: Api, change: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"email": "a@example.com", "password": PASSWORD, "token_name": "x"}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = await api_no_workers.client.post(URL, json=body)
    assert response.status_code == 400, response.text
    out = response.json()
    assert out["code"] == "validation_error"
    assert out["message"] == "Request failed schema validation."
    assert field in out["details"]["fields"], out


async def test_a_json_array_body_is_400(api_no_workers: Api) -> None:
    response = await api_no_workers.client.post(URL, json=["email", "password"])
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"


# ---- using a token --------------------------------------------------------------------------


async def test_scheme_is_case_insensitive(api_no_workers: Api) -> None:
    api = api_no_workers
    token = await api.token(Role.USER, (Scope.RUNS_READ,))
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        response = await api.client.get(
            "/api/v1/runs", headers={"Authorization": f"{scheme} {token}"}
        )
        assert response.status_code == 200, (scheme, response.text)


async def test_a_tampered_token_is_401(api_no_workers: Api) -> None:
    api = api_no_workers
    token = await api.token(Role.ADMIN)
    last = "A" if token[-1] != "A" else "B"
    for bad in (token[:-1] + last, token[:-1], token + "x", token.replace("spci_", "spcx_", 1)):
        response = await _me(api, bad)
        assert response.status_code == 401, bad
        assert response.json() == UNAUTHORIZED
    assert (await _me(api, token)).status_code == 200


# ---- DELETE /auth/tokens/current ------------------------------------------------------------


async def test_revoke_current_then_the_token_is_401(api_no_workers: Api) -> None:
    api = api_no_workers
    token = await api.token(Role.USER, ())  # no scope needed to revoke yourself
    other = await api.token(Role.USER, (Scope.RUNS_READ,))
    response = await api.client.delete(f"{URL}/current", headers=_bearer(token))
    assert response.status_code == 204
    assert response.content == b""

    for method, path in (
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/runs"),
        ("DELETE", f"{URL}/current"),
    ):
        again = await api.client.request(method, path, headers=_bearer(token))
        assert again.status_code == 401, (method, path)
        assert again.json() == UNAUTHORIZED
    # Only that token is gone.
    assert (await _me(api, other)).status_code == 200


# ---- GET /auth/tokens -----------------------------------------------------------------------


async def _row(api: Api, token: str) -> dict[str, Any]:
    async with unit_of_work(api.ctx.sessions) as session:
        result = await session.execute(
            text("SELECT * FROM api_tokens WHERE prefix = :p"), {"p": token[:16]}
        )
        rows = [dict(r._mapping) for r in result]
    assert len(rows) == 1
    return rows[0]


async def _expire(api: Api, token: str) -> None:
    async with unit_of_work(api.ctx.sessions) as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.prefix == token[:16])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_list_shows_every_token_but_never_a_secret(api_no_workers: Api) -> None:
    api = api_no_workers
    admin = await api.token(Role.ADMIN)
    email = await _user(api)
    active = (await _create(api, email, "active")).json()["token"]
    revoked = (await _create(api, email, "revoked")).json()["token"]
    expired = (await _create(api, email, "expired", scopes=["system:read"])).json()["token"]
    assert (await api.client.delete(f"{URL}/current", headers=_bearer(revoked))).status_code == 204
    await _expire(api, expired)

    response = await api.client.get(URL, headers=_bearer(admin), params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"]["total"] == 4 == len(body["data"])
    mine = {t["token_name"]: t for t in body["data"] if t["user_email"] == email}
    assert {n: t["state"] for n, t in mine.items()} == {
        "active": "active",
        "revoked": "revoked",
        "expired": "expired",
    }
    assert mine["expired"]["scopes"] == ["system:read"]
    assert mine["revoked"]["revoked_at"] is not None and mine["active"]["revoked_at"] is None
    for item in body["data"]:
        assert not {"token", "token_hash", "secret", "prefix"} & item.keys(), item
        for stamp in ("created_at", "expires_at"):
            assert DATETIME.match(item[stamp])
    for raw in (admin, active, revoked, expired):
        assert raw not in response.text
        assert raw[5:] not in response.text
        assert (await _row(api, raw))["token_hash"] not in response.text

    paged = await api.client.get(URL, headers=_bearer(admin), params={"limit": 1, "offset": 1})
    assert paged.json()["pagination"] == {"limit": 1, "offset": 1, "total": 4, "next_offset": 2}


# ---- DELETE /auth/tokens/{token_id} -------------------------------------------------------


async def test_revoke_by_id_owner_other_user_and_admin(api_no_workers: Api) -> None:
    api = api_no_workers
    owner = await api.token(Role.USER, (Scope.RUNS_READ,))
    spare = await api.token(Role.USER, ())
    stranger = await api.token(Role.CONTRIBUTOR, (Scope.RUNS_WRITE,))
    admin = await api.token(Role.ADMIN)
    owner_id = (await _me(api, owner)).json()["token_id"]
    spare_id = (await _me(api, spare)).json()["token_id"]

    # Someone else's token looks like a token that does not exist.
    response = await api.client.delete(f"{URL}/{owner_id}", headers=_bearer(stranger))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    missing = await api.client.delete(f"{URL}/999999", headers=_bearer(stranger))
    assert missing.status_code == 404
    assert missing.json()["message"] == response.json()["message"].replace(str(owner_id), "999999")
    assert (await _me(api, owner)).status_code == 200

    bad_id = await api.client.delete(f"{URL}/abc", headers=_bearer(stranger))
    assert bad_id.status_code == 400
    assert bad_id.json()["message"] == "token_id must be a positive integer."

    response = await api.client.delete(f"{URL}/{owner_id}", headers=_bearer(owner))
    assert response.status_code == 204 and response.content == b""
    assert (await _me(api, owner)).status_code == 401

    response = await api.client.delete(f"{URL}/{spare_id}", headers=_bearer(admin))
    assert response.status_code == 204
    assert (await _me(api, spare)).status_code == 401


# ---- expiry and storage ----------------------------------------------------------------------


async def test_expired_token_is_401(api_no_workers: Api) -> None:
    api = api_no_workers
    token = await api.token(Role.ADMIN)
    assert (await _me(api, token)).status_code == 200
    await _expire(api, token)
    for path in ("/api/v1/auth/me", "/api/v1/runs", "/api/v1/system/queue"):
        response = await api.client.get(path, headers=_bearer(token))
        assert response.status_code == 401, path
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    revoke = await api.client.delete(f"{URL}/current", headers=_bearer(token))
    assert revoke.status_code == 401


async def test_the_database_never_holds_a_raw_token(
    api_no_workers: Api, settings: Settings
) -> None:
    api = api_no_workers
    email = await _user(api, Role.ADMIN)
    raws = []
    for name in ("one", "two", "three"):
        response = await _create(api, email, name, scopes=["runs:read", "tokens:manage"])
        raws.append(response.json()["token"])
    raws.append(await api.token(Role.USER))
    for raw in raws:  # use them, so last_used_at and friends are written too
        assert (await _me(api, raw)).status_code == 200
    assert (await api.client.delete(f"{URL}/current", headers=_bearer(raws[0]))).status_code == 204

    async with unit_of_work(api.ctx.sessions) as session:
        rows = [dict(r._mapping) for r in await session.execute(text("SELECT * FROM api_tokens"))]
    assert len(rows) == len(raws)
    for raw in raws:
        row = await _row(api, raw)
        assert row["prefix"] == raw[:16]
        assert re.fullmatch(r"[0-9a-f]{64}", row["token_hash"])
        for other in rows:
            for value in other.values():
                assert raw not in str(value)
                assert raw[16:] not in str(value)  # the secret part, beyond the lookup prefix

    # Nor anywhere in the files (including the write-ahead log).
    files = [p for p in settings.data_dir.iterdir() if p.name.startswith("runplane.db")]
    assert files
    blob = b"".join(p.read_bytes() for p in files)
    for raw in raws:
        assert raw[16:].encode() not in blob
    assert PASSWORD.encode() not in blob
