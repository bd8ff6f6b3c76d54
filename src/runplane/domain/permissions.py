"""Roles, scopes and which of them each action needs.

The API checks these early (the Sample Platform's order of checks puts roles and
scopes before body validation); the services check the same table again, so a
caller that is not an HTTP request obeys the same rules.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CONTRIBUTOR = "contributor"
    TESTER = "tester"
    USER = "user"


class Scope(StrEnum):
    RUNS_READ = "runs:read"
    RUNS_WRITE = "runs:write"
    RESULTS_READ = "results:read"
    BASELINES_WRITE = "baselines:write"
    SYSTEM_READ = "system:read"
    SYSTEM_WRITE = "system:write"
    TOKENS_MANAGE = "tokens:manage"
    #: ``GET /metrics``: run counts and timings of every project (admin-only: it names
    #: every repository and shows the whole installation's load).
    METRICS_READ = "metrics:read"


ALL_SCOPES: tuple[Scope, ...] = tuple(Scope)
DEFAULT_SCOPES: tuple[Scope, ...] = (Scope.RUNS_READ, Scope.RESULTS_READ)

#: Scopes a non-admin may put on a token (Sample Platform rule).
NON_ADMIN_SCOPES: frozenset[Scope] = frozenset(
    {Scope.RUNS_READ, Scope.RUNS_WRITE, Scope.RESULTS_READ, Scope.SYSTEM_READ}
)


class Action(StrEnum):
    SUBMIT_RUN = "submit_run"
    CANCEL_RUN = "cancel_run"
    RETRY_RUN = "retry_run"
    RESTART_RUN = "restart_run"
    MANAGE_PROJECTS = "manage_projects"
    MANAGE_TOKENS = "manage_tokens"
    #: Samples, regression tests, outputs, variants, categories.
    EDIT_SUITE = "edit_suite"
    APPROVE_BASELINE = "approve_baseline"


_RUN_CONTROL = frozenset({Role.ADMIN, Role.CONTRIBUTOR, Role.TESTER})

ACTION_ROLES: dict[Action, frozenset[Role]] = {
    Action.SUBMIT_RUN: _RUN_CONTROL,
    Action.CANCEL_RUN: _RUN_CONTROL,
    Action.RETRY_RUN: _RUN_CONTROL,
    Action.RESTART_RUN: _RUN_CONTROL,
    Action.MANAGE_PROJECTS: frozenset({Role.ADMIN}),
    Action.MANAGE_TOKENS: frozenset({Role.ADMIN}),
    Action.EDIT_SUITE: frozenset({Role.ADMIN, Role.CONTRIBUTOR}),
    # baselines:write is an admin-only scope, so in effect only admins approve (as in H).
    Action.APPROVE_BASELINE: frozenset({Role.ADMIN}),
}


def scopes_allowed_for(role: Role) -> frozenset[Scope]:
    return frozenset(ALL_SCOPES) if role is Role.ADMIN else NON_ADMIN_SCOPES
