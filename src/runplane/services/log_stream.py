"""Following a run's raw log as it grows, and reading byte ranges of it.

The raw log is the run's lines in order, each ending in a newline (see
``execution.log_writer``); a byte offset in it is the one position a reader needs to
resume without a gap or a duplicate. ``follow_log`` polls the database, never an
in-process signal, because the lines may be written by a worker on another host.
It yields ``LogChunk``s of new bytes, a ``KeepAlive`` when there was nothing to say
for a while, and one ``LogEnd`` once the run is over and every byte was handed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from runplane.domain.errors import RunNotFound
from runplane.domain.status import TERMINAL, RunStatus
from runplane.services.context import Context
from runplane.store import logs as log_store
from runplane.store import runs as run_store
from runplane.store.database import unit_of_work
from runplane.store.models import RunLogLine

#: Largest ``LogChunk`` (bytes), so one event stays small for a browser to parse.
MAX_CHUNK_BYTES = 64 * 1024
#: Lines read per query while following; a full batch is followed by another at once.
POLL_LINES = 1000


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Raw log bytes ``[offset, next_offset)``, decoded as UTF-8 (errors replaced)."""

    offset: int
    next_offset: int
    text: str


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Nothing new for a while; lets proxies and clients see the connection is alive."""


@dataclass(frozen=True, slots=True)
class LogEnd:
    """The run is over and the log up to ``offset`` (its size) was handed out."""

    status: RunStatus
    offset: int


LogEvent = LogChunk | KeepAlive | LogEnd


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``first``..``last`` inclusive (``last`` None: to the end of the log), or,
    with ``suffix``, the final ``suffix`` bytes."""

    first: int = 0
    last: int | None = None
    suffix: int | None = None

    def resolve(self, size: int) -> tuple[int, int] | None:
        """The inclusive span this range selects in ``size`` bytes; None if it selects none."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                return None
            return max(size - self.suffix, 0), size - 1
        if self.first >= size:
            return None
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last


@dataclass(frozen=True, slots=True)
class RawLog:
    """A read of the raw log: its ``size`` then, the run's status, and the bytes
    ``[start, end)`` (the whole log, or the range asked for) in ``data``."""

    size: int
    status: RunStatus
    start: int
    end: int
    #: Empty when read ``with_data=False``.
    data: bytes
    #: False when a range was asked for and the log holds none of it.
    satisfiable: bool = True


def _line_bytes(line: RunLogLine) -> bytes:
    return line.message.encode() + b"\n"


async def raw_log(
    ctx: Context, run_id: int, byte_range: ByteRange | None = None, *, with_data: bool = True
) -> RawLog:
    """The raw log, or the part ``byte_range`` selects (only the lines overlapping it are
    read). ``with_data=False`` measures without reading lines (for ``HEAD``).

    ``status`` is read before the size: when it is terminal, ``size`` is final.
    """
    async with unit_of_work(ctx.reads) as session:
        status = await run_store.get_status(session, run_id)
        if status is None:
            raise RunNotFound(run_id)
        size = await log_store.log_size(session, run_id)
        span = (0, size - 1) if byte_range is None else byte_range.resolve(size)
        if span is None:
            return RawLog(size, status, 0, 0, b"", satisfiable=byte_range is None)
        first, last = span
        if not with_data:
            return RawLog(size, status, first, last + 1, b"")
        anchor = await log_store.line_at(session, run_id, first)
        lines = await log_store.read_span(
            session, run_id, from_seq=anchor.seq if anchor else 0, to_offset=last
        )
    start = lines[0].byte_offset if lines else first
    data = b"".join(_line_bytes(line) for line in lines)[first - start : last + 1 - start]
    return RawLog(size, status, first, first + len(data), data)


async def follow_log(
    ctx: Context,
    run_id: int,
    *,
    offset: int,
    poll_seconds: float = 0.5,
    keepalive_seconds: float,
    max_seconds: float,
) -> AsyncIterator[LogEvent]:
    """The log from byte ``offset`` on, as it is written, until the run is over.

    Awaiting this checks that the run exists (``RunNotFound`` otherwise), so an HTTP
    caller can still answer 404; the iterator it returns does the following. The
    first chunk starts exactly at ``offset``, even inside a line. The iterator stops
    without ``LogEnd`` after ``max_seconds`` (the client resumes from the last chunk's
    ``next_offset``) or if the run is deleted. No database session is held between
    polls or while the consumer handles an event.
    """
    async with unit_of_work(ctx.reads) as session:
        if await run_store.get_status(session, run_id) is None:
            raise RunNotFound(run_id)
    return _follow(ctx, run_id, offset, poll_seconds, keepalive_seconds, max_seconds)


@dataclass(slots=True)
class _Cursor:
    #: Next byte to hand out.
    position: int
    #: Next line to read, once the line holding ``position`` has been found.
    seq: int | None = None
    #: Where that next line must start; another start means the log was replaced.
    line_offset: int | None = None


@dataclass(frozen=True, slots=True)
class _Poll:
    status: RunStatus | None
    chunks: list[LogChunk]
    #: A full batch: more lines may be waiting right now.
    more: bool = False
    #: The log was replaced under us (an in-place restart): offsets no longer line up.
    rewritten: bool = False
    #: Terminal status and everything read: the log's final size.
    final_size: int | None = None


async def _follow(
    ctx: Context,
    run_id: int,
    offset: int,
    poll_seconds: float,
    keepalive_seconds: float,
    max_seconds: float,
) -> AsyncIterator[LogEvent]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    keepalive_at = loop.time() + keepalive_seconds
    cursor = _Cursor(offset)
    while loop.time() < deadline:
        # The session is closed before anything is yielded: a slow client must not
        # keep a connection (or, on SQLite, a read snapshot) open.
        found = await _poll(ctx, run_id, cursor)
        if found.status is None:
            return
        for chunk in found.chunks:
            yield chunk
            keepalive_at = loop.time() + keepalive_seconds
        if found.rewritten:
            # Closing makes the client reconnect from its last id into the new log.
            return
        if found.final_size is not None:
            yield LogEnd(found.status, found.final_size)
            return
        if found.more:
            continue
        poll_at = loop.time() + poll_seconds
        while (now := loop.time()) < min(poll_at, deadline):
            if now >= keepalive_at:
                yield KeepAlive()
                keepalive_at = loop.time() + keepalive_seconds
                continue
            await asyncio.sleep(min(poll_at, keepalive_at, deadline) - now)


async def _poll(ctx: Context, run_id: int, cursor: _Cursor) -> _Poll:
    """New bytes after ``cursor`` (advanced past them), and whether the log is complete."""
    async with unit_of_work(ctx.reads) as session:
        # Status first: if it is terminal here, every line was committed before this read
        # (the executor flushes its log before the final transition).
        status = await run_store.get_status(session, run_id)
        if status is None:
            return _Poll(None, [])
        seq = cursor.seq
        if seq is None:
            anchor = await log_store.line_at(session, run_id, cursor.position)
            seq = anchor.seq if anchor is not None else 0
        lines = await log_store.read_lines(session, run_id, after_seq=seq, limit=POLL_LINES)
        more = len(lines) == POLL_LINES
        final_size = None
        if status in TERMINAL and not more:
            final_size = await log_store.log_size(session, run_id)
    if lines:
        cursor.seq = lines[-1].seq + 1
    chunks, rewritten = _chunks(cursor, lines)
    return _Poll(status, chunks, more=more, rewritten=rewritten, final_size=final_size)


def _chunks(cursor: _Cursor, lines: Sequence[RunLogLine]) -> tuple[list[LogChunk], bool]:
    """``lines`` cut from ``cursor.position`` into chunks of at most ``MAX_CHUNK_BYTES``
    (a single line never is larger); True too if a line does not start where the one
    before it ended, i.e. the log was replaced (an in-place restart)."""
    chunks: list[LogChunk] = []
    buf = bytearray()
    start = cursor.position

    def flush() -> None:
        nonlocal start
        if buf:
            chunks.append(LogChunk(start, start + len(buf), buf.decode(errors="replace")))
            start += len(buf)
            buf.clear()

    for line in lines:
        if cursor.line_offset is not None and line.byte_offset != cursor.line_offset:
            flush()
            return chunks, True
        data = _line_bytes(line)
        cursor.line_offset = line.byte_offset + len(data)
        skip = cursor.position - line.byte_offset
        if skip >= len(data):
            # Ends before the requested offset (a resume point past the log's end so far).
            continue
        piece = data[skip:]
        if buf and len(buf) + len(piece) > MAX_CHUNK_BYTES:
            flush()
        buf += piece
        cursor.position += len(piece)
    flush()
    return chunks, False
