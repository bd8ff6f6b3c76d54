"""Role checks shared by every service; the table itself lives in ``domain.permissions``."""

from __future__ import annotations

from runplane.domain.errors import RoleNotAllowed
from runplane.domain.permissions import ACTION_ROLES, Action
from runplane.domain.types import Principal


def ensure_allowed(actor: Principal | None, action: Action) -> None:
    """Raise ``RoleNotAllowed`` unless the actor's role may do ``action``.

    ``None`` is the local operator (the CLI on the server's machine), who may do anything.
    """
    if actor is None:
        return
    allowed = ACTION_ROLES[action]
    if actor.role not in allowed:
        raise RoleNotAllowed([r.value for r in allowed], actor.role.value)


def actor_name(actor: Principal | None) -> str:
    """How progress rows and ``triggered_by`` name who acted."""
    return actor.display if actor else "operator"
