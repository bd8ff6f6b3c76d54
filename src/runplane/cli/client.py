"""A small HTTP client of runplane's ``/api/v1`` for the ``runplane`` client commands.

It talks to a server, never to a database. :class:`Client` has one method per endpoint;
every failure, whether an HTTP error answer or a transport error, comes out as one
:class:`~runplane.cli.client_errors.ClientError`. Where to connect is
:mod:`runplane.cli.client_config`'s business, the log stream :mod:`runplane.cli.sse`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from runplane import __version__
from runplane.cli.client_config import API_PREFIX, normalize_server
from runplane.cli.client_errors import ClientError, error_from_response, transport_error
from runplane.cli.sse import LogChunk, LogEnd, follow_log_stream

JsonObject = dict[str, Any]


class Client:
    """The ``/api/v1`` endpoints the CLI uses; JSON in, JSON out, errors as ClientError."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        rate_limit_retries: int = 0,
        timeout_seconds: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = normalize_server(server)
        self.rate_limit_retries = rate_limit_retries
        self._sleep = sleep
        headers = {"User-Agent": f"runplane-cli/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.server + API_PREFIX,
            headers=headers,
            timeout=timeout_seconds,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing --

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; a 429 is retried after ``Retry-After`` up to
        ``rate_limit_retries`` times. ``content`` makes a fresh body for each attempt."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method,
                    path,
                    params=query,
                    json=json_body,
                    content=content() if content is not None else None,
                    headers=headers,
                )
            except httpx.TransportError as exc:
                raise self.transport_error(exc) from None
            if response.is_success:
                return response
            attempt = self._wait_out_rate_limit(error_from_response(response), attempt)

    def _wait_out_rate_limit(self, error: ClientError, attempt: int) -> int:
        """Sleep through a 429 if retries are left and return the next attempt's number;
        raise ``error`` otherwise."""
        if error.status_code == 429 and attempt < self.rate_limit_retries:
            self._sleep(error.retry_after_seconds or 1.0)
            return attempt + 1
        raise error

    def transport_error(self, exc: httpx.TransportError) -> ClientError:
        return transport_error(self.server, exc)

    def _json(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise ClientError(
                f"{self.server} answered {path} with something that is not JSON",
                status_code=response.status_code,
                code="bad_response",
            ) from None
        if not isinstance(body, dict):
            raise ClientError(f"unexpected answer from {path}", code="bad_response")
        return body

    # -- auth --

    def create_token(
        self,
        email: str,
        password: str,
        token_name: str,
        scopes: list[str] | None,
        expires_in_days: int,
    ) -> JsonObject:
        body: JsonObject = {
            "email": email,
            "password": password,
            "token_name": token_name,
            "expires_in_days": expires_in_days,
        }
        if scopes is not None:
            body["scopes"] = scopes
        return self._json("POST", "/auth/tokens", json_body=body)

    # -- runs --

    def list_runs(self, **filters: Any) -> JsonObject:
        return self._json("GET", "/runs", params=filters)

    def get_run(self, run_id: int) -> JsonObject:
        return self._json("GET", f"/runs/{run_id}")

    def submit_run(self, body: JsonObject, idempotency_key: str | None = None) -> JsonObject:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/runs", json_body=body, headers=headers)

    def cancel_run(self, run_id: int, reason: str | None = None) -> JsonObject:
        body = {"reason": reason} if reason is not None else None
        return self._json("POST", f"/runs/{run_id}/cancel", json_body=body)

    def retry_run(
        self, run_id: int, *, failed_only: bool = False, reason: str | None = None
    ) -> JsonObject:
        body: JsonObject = {"failed_only": failed_only}
        if reason is not None:
            body["reason"] = reason
        return self._json("POST", f"/runs/{run_id}/retry", json_body=body)

    def restart_run(self, run_id: int) -> JsonObject:
        return self._json("POST", f"/runs/{run_id}/restart")

    def summary(self, run_id: int) -> JsonObject:
        return self._json("GET", f"/runs/{run_id}/summary")

    def progress(self, run_id: int, *, offset: int = 0, limit: int = 100) -> JsonObject:
        return self._json(
            "GET", f"/runs/{run_id}/progress", params={"offset": offset, "limit": limit}
        )

    def run_tests(self, run_id: int, *, limit: int = 100) -> JsonObject:
        return self._json("GET", f"/runs/{run_id}/samples", params={"limit": limit})

    def log_page(self, run_id: int, *, cursor: int = 0, limit: int = 100) -> JsonObject:
        return self._json("GET", f"/runs/{run_id}/logs", params={"cursor": cursor, "limit": limit})

    def raw_log(self, run_id: int) -> Iterator[bytes]:
        """The whole log so far as bytes (``/logs/raw``: each line ends in a newline)."""
        attempt = 0
        while True:
            try:
                with self._http.stream("GET", f"/runs/{run_id}/logs/raw") as response:
                    if response.is_success:
                        yield from response.iter_bytes()
                        return
                    response.read()
                    error = error_from_response(response)
            except httpx.TransportError as exc:
                raise self.transport_error(exc) from None
            attempt = self._wait_out_rate_limit(error, attempt)

    def follow_log(
        self,
        run_id: int,
        *,
        offset: int = 0,
        reconnect_delay_seconds: float = 0.5,
        max_failures: int = 8,
        read_timeout_seconds: float = 90.0,
    ) -> Iterator[LogChunk | LogEnd]:
        """Follow ``/logs/stream`` until its ``end`` event, reconnecting with
        ``Last-Event-ID`` as needed (see :func:`runplane.cli.sse.follow_log_stream`)."""
        return follow_log_stream(
            self._http,
            self.server,
            run_id,
            sleep=self._sleep,
            offset=offset,
            reconnect_delay_seconds=reconnect_delay_seconds,
            max_failures=max_failures,
            read_timeout_seconds=read_timeout_seconds,
        )

    # -- samples --

    def list_samples(self, **filters: Any) -> JsonObject:
        return self._json("GET", "/samples", params=filters)

    def get_sample(self, sample_id: int) -> JsonObject:
        return self._json("GET", f"/samples/{sample_id}")

    def upload_sample(
        self, path: Path, *, filename: str, tags: list[str], notes: str | None
    ) -> tuple[JsonObject, bool]:
        """Stream a file up; returns (sample, created) — created is False for known bytes."""

        def body() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        response = self.request(
            "POST",
            "/samples/upload",
            params={"filename": filename, "tags": ",".join(tags) or None, "notes": notes},
            content=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(path.stat().st_size),
            },
        )
        sample: JsonObject = response.json()
        return sample, response.status_code == 201
