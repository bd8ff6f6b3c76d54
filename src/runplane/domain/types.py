"""Small value types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType

from runplane.domain.permissions import Role, Scope

RunId = NewType("RunId", int)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a user, through one token (or none, for the CLI)."""

    user_id: int
    email: str
    role: Role
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    token_id: int | None = None

    @property
    def display(self) -> str:
        return self.email
