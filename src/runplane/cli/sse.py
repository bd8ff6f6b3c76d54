"""A run's live log over Server-Sent Events, as the client commands read it.

:class:`SseDecoder` parses the event stream from bytes; :func:`follow_log_stream` reads
``/runs/{id}/logs/stream`` and reconnects after a dropped connection with ``Last-Event-ID``,
so the text it yields has no gap and no duplicate (:meth:`Client.follow_log` calls it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from runplane.cli.client_errors import ClientError, error_from_response, transport_error


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


def follow_log_stream(
    http: httpx.Client,
    server: str,
    run_id: int,
    *,
    sleep: Callable[[float], None],
    offset: int = 0,
    reconnect_delay_seconds: float = 0.5,
    max_failures: int = 8,
    read_timeout_seconds: float = 90.0,
) -> Iterator[LogChunk | LogEnd]:
    """Follow ``/logs/stream`` of ``http`` (a client of ``server``'s ``/api/v1``) until its
    ``end`` event, reconnecting as needed.

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
            with http.stream(
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
            problem = transport_error(server, exc)
        retry_ms = decoder.retry_ms if decoder.retry_ms is not None else retry_ms
        failures = 1 if healthy else failures + 1
        if failures > max_failures:
            raise problem
        if wait_seconds is None:
            base = retry_ms / 1000 if retry_ms is not None else reconnect_delay_seconds
            wait_seconds = min(base * 2 ** (failures - 1), 10.0)
        sleep(wait_seconds)


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
