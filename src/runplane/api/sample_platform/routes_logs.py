"""``/runs/{run_id}/logs/stream`` and ``/logs/raw``: a run's raw log, followed or by range.

The raw log is the run's lines in order, each ending in a newline; both routes count
in its bytes, so a reader can switch between them (read ``/raw``, then follow from
its size) without a gap or a duplicate.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from runplane.api.sample_platform.deps import Ctx, SystemRead
from runplane.api.sample_platform.errors import error_response
from runplane.api.sample_platform.openapi import json_errors
from runplane.api.sample_platform.routes_runs import RunIdPath
from runplane.api.sse import EVENT_STREAM, EventStreamResponse, sse_response
from runplane.domain.errors import InvalidInput
from runplane.services import log_stream
from runplane.services.log_stream import ByteRange

router = APIRouter(prefix="/runs", tags=["runs"])

MAX_OFFSET = 10**12
#: 0..10^12 with no sign or spaces: what ``Last-Event-ID`` may be (``id:`` of an event).
OFFSET_PATTERN = r"^(?:[0-9]{1,12}|1000000000000)$"
TEXT_PLAIN = "text/plain"
_RANGE_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")

STREAM_DESCRIPTION = """\
Server-Sent Events: the run's raw log (its lines in order, each ending in `\\n`) from byte
`offset` on, while it is written, then one `end` event once the run is over and every byte
was sent. A run without a log yet is not a 404: the stream waits for its first line.

```
id: <next_offset>
event: log
data: {"offset": <first byte>, "next_offset": <byte after it>, "text": "<bytes, UTF-8>"}

: keep-alive

id: <size>
event: end
data: {"status": "<internal run status, e.g. passed>", "offset": <size>}
```

A `log` event carries what one poll found (at most 64 KiB); its `text` is the bytes
`[offset, next_offset)` decoded as UTF-8 with invalid sequences replaced. Every event's
`id` is the byte to resume from: send it back as `Last-Event-ID` (which takes precedence
over `offset`; browsers' `EventSource` does so when it reconnects) and the stream goes
on exactly there, even inside a line. A comment (`: keep-alive`) comes when nothing was
sent for `RUNPLANE_LOG_STREAM_KEEPALIVE_SECONDS`. After
`RUNPLANE_LOG_STREAM_MAX_SECONDS` the stream closes without `end`: reconnect with the
last `id`.
"""

RAW_DESCRIPTION = """\
The run's raw log as text: its lines in order, each ending in `\\n` (the byte offsets of
`/logs/stream`). `X-Run-Status` is the run's internal status when the log was measured:
once it is terminal the log is complete. A run without a log yet gives an empty 200.

`Range` (RFC 9110) is honoured for one range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (the
last n bytes) answer 206 with `Content-Range`; a range starting at or past the end (any
range of an empty log) is a 416 with `Content-Range: bytes */<size>`. A malformed `Range`,
another unit, or several ranges are ignored: 200 with the whole log. `HEAD` gives the same
headers without a body.
"""

_RAW_HEADERS: dict[str, Any] = {
    "X-Run-Status": {
        "description": "The run's internal status (e.g. `running`, `passed`).",
        "schema": {"type": "string"},
    },
    "Accept-Ranges": {"description": "`bytes`.", "schema": {"type": "string"}},
    "Content-Length": {"description": "Bytes in this body.", "schema": {"type": "string"}},
}
_TEXT = {TEXT_PLAIN: {"schema": {"type": "string"}}}

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An event stream (`log`, keep-alive comments, `end`).",
        "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
    },
    **json_errors(400, 403, 404),
}
RAW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole raw log.", "content": _TEXT, "headers": _RAW_HEADERS},
    206: {
        "description": "The range asked for.",
        "content": _TEXT,
        "headers": {
            **_RAW_HEADERS,
            "Content-Range": {
                "description": "`bytes <first>-<last>/<size>`.",
                "schema": {"type": "string"},
            },
        },
    },
    **json_errors(400, 403, 404, 416),
}


#: Documented by hand: a declared ``str | None`` header is ``anyOf [string, null]`` in the
#: schema, which invites clients (and fuzzers) to send the text ``null``.
LAST_EVENT_ID_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "The `id` of the last event received (a byte offset, 0 to 10^12); "
            "wins over `offset`.",
            "schema": {"type": "string", "pattern": OFFSET_PATTERN},
        }
    ]
}


@router.get(
    "/{run_id}/logs/stream",
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSES,
    summary="Follow a run's log as it is written (Server-Sent Events)",
    description=STREAM_DESCRIPTION,
    openapi_extra=LAST_EVENT_ID_OPENAPI,
)
async def stream_log(
    request: Request,
    ctx: Ctx,
    _: SystemRead,
    run_id: RunIdPath,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Byte of the raw log to start at.")
    ] = 0,
) -> StreamingResponse:
    last_event_id = request.headers.get("last-event-id")
    if last_event_id is not None:
        if re.fullmatch(OFFSET_PATTERN, last_event_id) is None:
            raise InvalidInput(
                f"Last-Event-ID must be a byte offset from 0 to {MAX_OFFSET}.",
                {"Last-Event-ID": "Send the id of the last event received."},
            )
        offset = int(last_event_id)
    settings = ctx.settings
    events = await log_stream.follow_log(
        ctx,
        run_id,
        offset=offset,
        keepalive_seconds=settings.log_stream_keepalive_seconds,
        max_seconds=settings.log_stream_max_seconds,
    )
    return sse_response(events)


def parse_range(header: str | None) -> ByteRange | None:
    """The one byte range of a ``Range`` header; None for none, a malformed one, another
    unit or several ranges (RFC 9110 lets a server ignore ``Range``: the whole log)."""
    unit, equals, spec = (header or "").partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None:
        return None
    first, last = match.groups()
    try:
        if not first:
            return ByteRange(suffix=int(last)) if last else None
        if not last:
            return ByteRange(first=int(first))
        if int(last) < int(first):
            return None
        return ByteRange(first=int(first), last=int(last))
    except ValueError:  # more digits than Python converts
        return None


@router.head("/{run_id}/logs/raw", include_in_schema=False)
@router.get(
    "/{run_id}/logs/raw",
    response_class=Response,
    responses=RAW_RESPONSES,
    summary="A run's raw log as text (Range requests; readable while it runs)",
    description=RAW_DESCRIPTION,
)
async def raw_log(
    request: Request,
    ctx: Ctx,
    _: SystemRead,
    run_id: RunIdPath,
    range_header: Annotated[
        str | None,
        Header(
            alias="Range",
            description="`bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else is ignored.",
        ),
    ] = None,
) -> Response:
    wanted = parse_range(range_header)
    raw = await log_stream.raw_log(ctx, run_id, wanted, with_data=request.method != "HEAD")
    headers = {"Accept-Ranges": "bytes", "X-Run-Status": raw.status.value}
    if not raw.satisfiable:
        return error_response(
            416,
            "range_not_satisfiable",
            f"The log has {raw.size} bytes; the range asked for starts past its end.",
            {"size": raw.size},
            headers={**headers, "Content-Range": f"bytes */{raw.size}"},
        )
    headers["Content-Length"] = str(raw.end - raw.start)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {raw.start}-{raw.end - 1}/{raw.size}"
    return Response(
        raw.data,
        status_code=200 if wanted is None else 206,
        media_type=TEXT_PLAIN,
        headers=headers,
    )
