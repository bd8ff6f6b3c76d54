"""A small HTTP client of runplane's ``/api/v1`` for the ``runplane`` client commands.

It talks to a server, never to a database. Three parts:

- where to connect and with which token: ``--server``/``RUNPLANE_SERVER``, ``RUNPLANE_TOKEN``
  and the config file written by ``runplane login`` (:func:`resolve_target`);
- :class:`Client`, one method per endpoint; every failure, whether an HTTP error answer
  (``{code, message, details}``) or a transport error, comes out as one :class:`ClientError`;
- the log stream: :class:`SseDecoder` parses Server-Sent Events from bytes, and
  :meth:`Client.follow_log` reconnects after a dropped connection with ``Last-Event-ID``,
  so the text it yields has no gap and no duplicate.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from runplane import __version__
from runplane.domain.status import TERMINAL, RunStatus

API_PREFIX = "/api/v1"
DEFAULT_SERVER = "http://127.0.0.1:8000"
JsonObject = dict[str, Any]

#: Exit code of a finished run's verdict (internal status names).
VERDICT_EXIT_CODES: dict[str, int] = {
    RunStatus.PASSED: 0,
    RunStatus.FAILED: 1,
    RunStatus.ERROR: 2,
    RunStatus.TIMED_OUT: 2,
    RunStatus.CANCELED: 2,
}
TERMINAL_STATUSES: frozenset[str] = frozenset(s.value for s in TERMINAL)
#: The same verdicts by their Sample Platform names, for a server without ``internal_status``.
_SP_EXIT_CODES = {"pass": 0, "fail": 1, "error": 2, "canceled": 2, "incomplete": 1}
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


def exit_code_of(run: Mapping[str, Any]) -> int:
    """The verdict of a finished run object as an exit code: 0 passed, 1 failed, 2 else."""
    internal = run.get("internal_status")
    if isinstance(internal, str) and internal in VERDICT_EXIT_CODES:
        return VERDICT_EXIT_CODES[internal]
    return _SP_EXIT_CODES.get(str(run.get("status")), 2)


def is_terminal(run: Mapping[str, Any]) -> bool:
    internal = run.get("internal_status")
    if isinstance(internal, str):
        return internal in TERMINAL_STATUSES
    return str(run.get("status")) in _SP_EXIT_CODES


# ---- where to connect ---------------------------------------------------------------------


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$RUNPLANE_CONFIG``, else ``$XDG_CONFIG_HOME/runplane/config.json``, else
    ``~/.config/runplane/config.json``."""
    env = os.environ if env is None else env
    if env.get("RUNPLANE_CONFIG"):
        return Path(env["RUNPLANE_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else None
    return (base or Path.home() / ".config") / "runplane" / "config.json"


def read_config(path: Path) -> dict[str, str]:
    """The saved ``{server, token}``; empty when there is no file yet."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ClientError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ClientError(f"the config file {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ClientError(f"the config file {path} is not a JSON object")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def write_config(path: Path, values: Mapping[str, str]) -> None:
    """Replace the config file atomically; it is readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600 before anything is written to it, whatever the umask.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(dict(values), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def normalize_server(url: str) -> str:
    """``host:8000``, ``http://host:8000/`` and ``http://host:8000/api/v1`` all name one server."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


@dataclass(frozen=True, slots=True)
class Target:
    """A server and the token to send it (None: none known)."""

    server: str
    token: str | None
    #: Why a saved token was not used, for the 401 message.
    note: str | None = None


def resolve_target(server_option: str | None, env: Mapping[str, str] | None = None) -> Target:
    """Server: the option (or ``RUNPLANE_SERVER``), else the config file, else the default.
    Token: ``RUNPLANE_TOKEN``, else the config file's, which is sent only to the server it
    was issued by."""
    env = os.environ if env is None else env
    saved = read_config(config_path(env))
    saved_server = normalize_server(saved["server"]) if saved.get("server") else None
    explicit = server_option or env.get("RUNPLANE_SERVER")
    server = normalize_server(explicit) if explicit else (saved_server or DEFAULT_SERVER)
    if env.get("RUNPLANE_TOKEN"):
        return Target(server, env["RUNPLANE_TOKEN"].strip())
    if saved.get("token") and saved_server == server:
        return Target(server, saved["token"])
    note = None
    if saved.get("token") and saved_server:
        note = f"the saved token is for {saved_server}"
    return Target(server, None, note)


# ---- Server-Sent Events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    #: The last event id at the time of dispatch (it persists across events).
    id: str | None


_LINE_END = re.compile(rb"\r\n|\r|\n")


class SseDecoder:
    """Bytes in, events out, as the WHATWG HTML "event stream interpretation" says: lines end
    with CRLF, LF or CR; ``:`` starts a comment; ``data`` lines join with LF; an event is
    dispatched at a blank line, so one cut off by a dropped connection never is."""

    def __init__(self, last_event_id: str | None = None) -> None:
        #: Committed at each dispatch; what ``Last-Event-ID`` carries on reconnect.
        self.last_event_id = last_event_id
        #: Reconnection delay the server asked for (``retry:``), in milliseconds.
        self.retry_ms: int | None = None
        self._id_buffer = last_event_id
        self._event = ""
        self._data: list[str] = []
        self._pending = b""
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        data = self._pending + chunk
        if not self._started and len(data) >= 3:
            self._started = True
            data = data.removeprefix(b"\xef\xbb\xbf")
        events: list[ServerSentEvent] = []
        pos = 0
        for match in _LINE_END.finditer(data):
            if match.group() == b"\r" and match.end() == len(data):
                # A CR at the end of a chunk: an LF may follow in the next one.
                self._skip_lf = True
            event = self._line(data[pos : match.start()].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            pos = match.end()
        self._pending = data[pos:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(event, "\n".join(data), self.last_event_id)


def parse_sse(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    decoder = SseDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Log bytes ``[offset, next_offset)`` of a run, decoded."""

    offset: int
    next_offset: int
    text: str


@dataclass(frozen=True, slots=True)
class LogEnd:
    """The run is over and its log complete; ``status`` is the internal status."""

    status: str
    offset: int


def _trim(chunk: LogChunk, position: int) -> LogChunk | None:
    """The part of ``chunk`` after ``position`` (a server that resent bytes we have)."""
    if chunk.next_offset <= position:
        return None
    if chunk.offset >= position:
        return chunk
    raw = chunk.text.encode()
    if len(raw) != chunk.next_offset - chunk.offset:
        return chunk  # the text is not the bytes (invalid UTF-8 replaced): keep it whole
    rest = raw[position - chunk.offset :].decode("utf-8", "replace")
    return LogChunk(position, chunk.next_offset, rest)


# ---- the client ---------------------------------------------------------------------------


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
            error = error_from_response(response)
            if error.status_code == 429 and attempt < self.rate_limit_retries:
                attempt += 1
                self._sleep(error.retry_after_seconds or 1.0)
                continue
            raise error

    def transport_error(self, exc: httpx.TransportError) -> ClientError:
        if isinstance(exc, httpx.ConnectError):
            reason = "connection refused" if "refused" in str(exc).lower() else str(exc)
            return ClientError(f"cannot connect to {self.server} ({reason})", code="connect_error")
        if isinstance(exc, httpx.TimeoutException):
            return ClientError(f"{self.server} did not answer in time", code="timeout")
        return ClientError(f"request to {self.server} failed: {exc}", code="transport_error")

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
            if error.status_code == 429 and attempt < self.rate_limit_retries:
                attempt += 1
                self._sleep(error.retry_after_seconds or 1.0)
                continue
            raise error

    def follow_log(
        self,
        run_id: int,
        *,
        offset: int = 0,
        reconnect_delay_seconds: float = 0.5,
        max_failures: int = 8,
        read_timeout_seconds: float = 90.0,
    ) -> Iterator[LogChunk | LogEnd]:
        """Follow ``/logs/stream`` until its ``end`` event, reconnecting as needed.

        A connection that drops, times out or closes without ``end`` (the server's maximum
        stream duration) is reopened with ``Last-Event-ID``; bytes already yielded are
        never yielded again. After ``max_failures`` attempts in a row that got nothing
        (not even a keep-alive), the last problem is raised.
        """
        path = f"/runs/{run_id}/logs/stream"
        timeout = httpx.Timeout(10.0, read=read_timeout_seconds)
        last_id: str | None = None
        position = offset
        failures = 0
        retry_ms: int | None = None
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            params: dict[str, Any] = {}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            elif offset:
                params["offset"] = offset
            decoder = SseDecoder(last_id)
            healthy = False  # the server sent something: not a failure to back off from
            problem: ClientError
            wait_seconds: float | None = None
            try:
                with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=timeout
                ) as response:
                    if not response.is_success:
                        response.read()
                        error = error_from_response(response)
                        if error.status_code != 429 and (error.status_code or 0) < 500:
                            raise error
                        wait_seconds = error.retry_after_seconds
                        problem = error
                    else:
                        for chunk in response.iter_bytes():
                            healthy = True
                            for event in decoder.feed(chunk):
                                item = _log_item(event)
                                if isinstance(item, LogEnd):
                                    yield item
                                    return
                                if item is not None and (kept := _trim(item, position)):
                                    position = kept.next_offset
                                    yield kept
                            last_id = decoder.last_event_id
                        problem = ClientError(f"the log stream of run {run_id} ended early")
            except httpx.TransportError as exc:
                last_id = decoder.last_event_id
                problem = self.transport_error(exc)
            retry_ms = decoder.retry_ms if decoder.retry_ms is not None else retry_ms
            failures = 1 if healthy else failures + 1
            if failures > max_failures:
                raise problem
            if wait_seconds is None:
                base = retry_ms / 1000 if retry_ms is not None else reconnect_delay_seconds
                wait_seconds = min(base * 2 ** (failures - 1), 10.0)
            self._sleep(wait_seconds)

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


def _log_item(event: ServerSentEvent) -> LogChunk | LogEnd | None:
    if event.event not in ("log", "end"):
        return None
    try:
        data = json.loads(event.data)
        if event.event == "end":
            return LogEnd(str(data["status"]), int(data.get("offset", 0)))
        return LogChunk(int(data["offset"]), int(data["next_offset"]), str(data["text"]))
    except (ValueError, KeyError, TypeError):
        raise ClientError(f"malformed {event.event} event in the log stream") from None


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
