"""``/auth``: exchange credentials for tokens, list and revoke them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from runplane.api.sample_platform import schemas as s
from runplane.api.sample_platform.deps import (
    Authenticated,
    Ctx,
    Page,
    TokenAdmin,
    body_openapi,
    json_body,
    page_envelope,
)
from runplane.api.sample_platform.openapi import errors
from runplane.services import accounts
from runplane.store.models import utcnow

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/tokens",
    status_code=201,
    response_model=s.AuthToken,
    responses=errors(400, 401, 403, 415),
    summary="Create an API token (shown once)",
    openapi_extra=body_openapi(s.TokenCreate),
)
async def create_token(
    ctx: Ctx, body: Annotated[s.TokenCreate, Depends(json_body(s.TokenCreate))]
) -> s.AuthToken:
    issued = await accounts.login_and_issue(
        ctx, body.email, body.password, body.token_name, body.scopes, body.expires_in_days
    )
    return s.AuthToken(
        token=issued.token,
        token_name=issued.row.name,
        token_id=issued.row.id,
        scopes=list(issued.row.scopes),
        expires_at=issued.row.expires_at,
    )


@router.delete(
    "/tokens/current",
    status_code=204,
    responses=errors(),
    summary="Revoke the token making this request",
)
async def revoke_current(ctx: Ctx, principal: Authenticated) -> Response:
    if principal.token_id is not None:
        await accounts.revoke(ctx, principal, principal.token_id)
    return Response(status_code=204)


@router.get(
    "/tokens",
    response_model=s.PageOf[s.TokenInfo],
    responses=errors(400, 403),
    summary="List every token (admin, tokens:manage); secrets are never shown",
)
async def list_tokens(ctx: Ctx, _: TokenAdmin, page: Page) -> dict[str, Any]:
    rows, total = await accounts.list_tokens(ctx, limit=page.limit, offset=page.offset)
    now = utcnow()
    return page_envelope(
        [s.token_info(row, email, accounts.token_state(row, now)) for row, email in rows],
        page,
        total,
    )


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    responses=errors(400, 404),
    summary="Revoke one of your tokens (admins: any token)",
)
async def revoke_token(
    ctx: Ctx,
    principal: Authenticated,
    token_id: Annotated[int, Path(ge=1, le=2147483647)],
) -> Response:
    await accounts.revoke(ctx, principal, token_id)
    return Response(status_code=204)


@router.get("/me", response_model=s.Me, responses=errors(), summary="Who this token belongs to")
async def me(principal: Authenticated) -> s.Me:
    return s.Me(
        user_id=principal.user_id,
        email=principal.email,
        role=principal.role.value,
        token_id=principal.token_id,
        token_scopes=sorted(x.value for x in principal.scopes),
    )
