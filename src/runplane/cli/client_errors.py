""":class:`ClientError`, the one failure of the ``runplane`` client commands.

An HTTP error answer (``{code, message, details}``) becomes one in :func:`error_from_response`,
a transport failure in :func:`transport_error`; :func:`describe` says it in one line for the
user, with what to do where that helps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from runplane.cli.client_config import Target

#: A 429's ``Retry-After`` is honoured up to this long per wait.
MAX_RETRY_AFTER_SECONDS = 600.0


class ClientError(Exception):
    """A request that did not succeed; ``status_code`` is None when no HTTP answer came back."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str = "client_error",
        details: Mapping[str, Any] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after_seconds = retry_after_seconds


def error_from_response(response: httpx.Response) -> ClientError:
    """The API's ``{code, message, details}`` (or what there is of it) as a ClientError."""
    status = response.status_code
    code, message = f"http_{status}", f"HTTP {status} {response.reason_phrase}"
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        message = str(body.get("message") or message)
        if isinstance(body.get("details"), dict):
            details = body["details"]
    retry_after = None
    if status == 429:
        header = response.headers.get("Retry-After", "")
        hint = header if header.isdigit() else details.get("retry_after")
        try:
            retry_after = min(float(hint), MAX_RETRY_AFTER_SECONDS) if hint is not None else 1.0
        except (TypeError, ValueError):
            retry_after = 1.0
    return ClientError(
        message, status_code=status, code=code, details=details, retry_after_seconds=retry_after
    )


def transport_error(server: str, exc: httpx.TransportError) -> ClientError:
    """No HTTP answer from ``server``: refused, timed out, or cut off."""
    if isinstance(exc, httpx.ConnectError):
        reason = "connection refused" if "refused" in str(exc).lower() else str(exc)
        return ClientError(f"cannot connect to {server} ({reason})", code="connect_error")
    if isinstance(exc, httpx.TimeoutException):
        return ClientError(f"{server} did not answer in time", code="timeout")
    return ClientError(f"request to {server} failed: {exc}", code="transport_error")


def describe(exc: ClientError, target: Target | None = None) -> str:
    """One line saying what went wrong and, where it helps, what to do."""
    status, message, details = exc.status_code, exc.message.rstrip("."), exc.details
    if status is None:
        if exc.code == "connect_error":
            return f"{message}; is the server running? Use --server or RUNPLANE_SERVER"
        return message
    if status == 401:
        hint = f" ({target.note})" if target and target.note else ""
        return f"not signed in or token invalid: run `runplane login` or set RUNPLANE_TOKEN{hint}"
    if status == 403:
        extra = ""
        if details.get("token_scopes") is not None:
            extra = f" (token scopes: {', '.join(details['token_scopes']) or 'none'})"
        elif details.get("user_role"):
            extra = f" (your role: {details['user_role']})"
        return f"forbidden: {message}{extra}"
    if status == 404:
        return f"not found: {message}"
    if status == 409:
        return f"conflict: {message}"
    if status in (400, 422):
        return f"rejected: {message}{_field_errors(details)}"
    if status == 429:
        seconds = round(exc.retry_after_seconds or 1)
        return f"rate limited: retry in {seconds} s (or pass --wait to wait and retry)"
    if status >= 500:
        return f"server error ({status}): {message}"
    return f"HTTP {status}: {message}"


def _field_errors(details: Mapping[str, Any]) -> str:
    fields = details.get("fields")
    if not isinstance(fields, dict) or not fields:
        return ""
    parts = []
    for name, messages in fields.items():
        text = "; ".join(messages) if isinstance(messages, list) else str(messages)
        parts.append(f"{name}: {text}")
    return " (" + "; ".join(parts) + ")"
