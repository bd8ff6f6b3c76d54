"""Domain errors. They carry no HTTP status: each dialect maps them itself.

RunplaneError
├── NotFound            (RunNotFound, ProjectNotFound, TokenNotFound)
├── PermissionDenied    (RoleNotAllowed, MissingScope, ScopeNotAllowed)
├── InvalidInput        field-level validation the schema could not express
├── UsageLimitExceeded  a plan quota (runs per day) is used up
├── Conflict            (IdempotencyConflict, DuplicateName, TransitionRejected)
├── Unprocessable       well-formed but semantically impossible
└── InvalidCredentials
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class RunplaneError(Exception):
    """Base class of every error runplane raises on purpose."""

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        self.details: dict[str, Any] = details
        super().__init__(self.message)


class NotFound(RunplaneError):
    """Resource not found."""

    resource = "resource"

    def __init__(self, ident: int | str, message: str | None = None) -> None:
        self.ident = ident
        super().__init__(message or f"{self.resource.capitalize()} {ident} not found.")


class RunNotFound(NotFound):
    resource = "run"


class ProjectNotFound(NotFound):
    resource = "project"


class TokenNotFound(NotFound):
    resource = "token"


class UserNotFound(NotFound):
    resource = "user"


class SampleNotFound(NotFound):
    resource = "sample"


class OutputNotFound(NotFound):
    resource = "output"


class WebProjectNotFound(NotFound):
    resource = "project"


class WebTestNotFound(NotFound):
    resource = "test"


class GroupNotFound(NotFound):
    resource = "group"


class BatchNotFound(NotFound):
    resource = "batch"


class ScreenshotNotFound(NotFound):
    resource = "screenshot"


class PermissionDenied(RunplaneError):
    """You do not have permission to perform this action."""


class RoleNotAllowed(PermissionDenied):
    def __init__(self, required: Iterable[str], actual: str) -> None:
        self.required = sorted(required)
        self.actual = actual
        super().__init__(
            f"This action requires one of the roles: {', '.join(self.required)}.",
            required_roles=self.required,
            user_role=actual,
        )


class MissingScope(PermissionDenied):
    def __init__(self, required: Iterable[str], held: Iterable[str]) -> None:
        req, have = sorted(required), sorted(held)
        missing = [s for s in req if s not in have]
        super().__init__(
            f"This token lacks the required scope: {', '.join(missing)}.",
            required_scopes=req,
            missing_scopes=missing,
            token_scopes=have,
        )


class ScopeNotAllowed(PermissionDenied):
    def __init__(self, role: str, scopes: Iterable[str]) -> None:
        names = sorted(scopes)
        super().__init__(
            f"Your current role ({role}) does not permit requesting the following scopes: "
            + ", ".join(names),
            disallowed_scopes=names,
        )


class InvalidInput(RunplaneError):
    """Request failed validation."""

    def __init__(self, message: str, fields: Mapping[str, str | list[str]]) -> None:
        super().__init__(
            message,
            fields={k: v if isinstance(v, list) else [v] for k, v in fields.items()},
        )


class Conflict(RunplaneError):
    """The request conflicts with the current state of the resource."""


class IdempotencyConflict(Conflict):
    """This Idempotency-Key was already used with a different request body."""


class DuplicateName(Conflict):
    """A resource with this name already exists."""


class TransitionRejected(Conflict):
    """The run is not in a state that allows this."""


class Unprocessable(RunplaneError):
    """The request is well formed but cannot be processed."""


class PayloadTooLarge(RunplaneError):
    """The upload is larger than allowed."""


class UsageLimitExceeded(RunplaneError):
    """The owner's run quota for the period is used up."""

    def __init__(self, message: str, *, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(message, limit=limit, retry_after=retry_after)


class InvalidCredentials(RunplaneError):
    """Email or password is incorrect."""
