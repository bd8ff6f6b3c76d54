"""Server-Sent Events for a followed run log, shared by every route that streams one.

Wire format (the CLI and the dashboard parse exactly this)::

    id: <next_offset>
    event: log
    data: {"offset": <start byte>, "next_offset": <byte after>, "text": "<decoded bytes>"}

    : keep-alive

    id: <size>
    event: end
    data: {"status": "<internal run status>", "offset": <size>}

An event's ``id`` is the byte to resume from, so a browser's ``EventSource`` resends it as
``Last-Event-ID`` when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from runplane.services.log_stream import KeepAlive, LogChunk, LogEnd, LogEvent

EVENT_STREAM = "text/event-stream"
#: No caching, and no buffering in nginx-style proxies, which would hold events back.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(event: str, data: Mapping[str, Any], *, id: int | str | None = None) -> bytes:
    """One event; ``data`` as single-line JSON (JSON escapes every newline)."""
    lines = [] if id is None else [f"id: {id}"]
    lines += [f"event: {event}", f"data: {json.dumps(data, ensure_ascii=False)}"]
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str) -> bytes:
    """A comment line: clients ignore it, proxies see traffic."""
    return f": {text}\n\n".encode()


def encode_log_event(event: LogEvent) -> bytes:
    match event:
        case LogChunk(offset=offset, next_offset=next_offset, text=text):
            body = {"offset": offset, "next_offset": next_offset, "text": text}
            return sse_event("log", body, id=next_offset)
        case LogEnd(status=status, offset=offset):
            return sse_event("end", {"status": status.value, "offset": offset}, id=offset)
        case KeepAlive():
            return sse_comment("keep-alive")


class EventStreamResponse(StreamingResponse):
    """A ``StreamingResponse`` that stops its events as soon as the client goes away.

    Starlette listens for ``http.disconnect`` only on servers older than ASGI spec 2.4;
    on newer ones a disconnect is noticed at the next write, which for a quiet log is
    a keep-alive interval later. Here the listener always runs, and the event iterator
    is closed whatever ends the response, so its polling ends with the request.
    """

    media_type = EVENT_STREAM

    def __init__(self, events: AsyncIterator[LogEvent], status_code: int = 200) -> None:
        self.events = events
        super().__init__(self._encoded(), status_code, headers=STREAM_HEADERS)

    async def _encoded(self) -> AsyncIterator[bytes]:
        async for event in self.events:
            yield encode_log_event(event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = asyncio.ensure_future(self.stream_response(send))
        gone = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({stream, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Shielded: when the server cancels the request, anyio would cancel every
            # await here again, and the event iterator would be left for the GC to close.
            with anyio.CancelScope(shield=True):
                for task in (stream, gone):
                    task.cancel()
                await asyncio.gather(stream, gone, return_exceptions=True)
                await _aclose(self.body_iterator)
                await _aclose(self.events)
        if not stream.cancelled() and (error := stream.exception()) is not None:
            if not isinstance(error, OSError):  # a server's "client disconnected"
                raise error


async def _aclose(iterator: object) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def sse_response(events: AsyncIterator[LogEvent]) -> StreamingResponse:
    """``events`` as ``text/event-stream``; see the module docstring for the format."""
    return EventStreamResponse(events)
