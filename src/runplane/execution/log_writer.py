"""Buffers a run's output into lines and writes them to the database while it runs.

Lines become readable (``/logs``) within ``flush_interval_seconds``. The raw log
is the lines in order, each ending in a newline; ``byte_offset`` is a line's start
in it, so a reader can resume at an exact byte. Output beyond
``max_bytes`` is dropped (the pipe is still drained so the process never blocks)
and one note says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runplane.store import logs as log_store
from runplane.store import runs as run_store
from runplane.store.database import unit_of_work
from runplane.store.models import RunLogLine

MAX_LINE_CHARS = 4000
log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    source: str
    level: str
    data: bytes


@dataclass
class LogWriter:
    sessions: async_sessionmaker[AsyncSession]
    run_id: int
    max_bytes: int
    #: Worker that must still own the run for its lines to be written.
    owner: str | None = None
    flush_interval_seconds: float = 0.25
    total_bytes: int = 0
    truncated: bool = False
    _seq: int = 0
    _offset: int = 0
    _partial: dict[str, bytearray] = field(default_factory=dict)
    _pending: list[_Pending] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        async with unit_of_work(self.sessions) as session:
            last = await log_store.last_line(session, self.run_id)
        if last is not None:
            self._seq = last.seq + 1
            self._offset = last.byte_offset + len(last.message.encode()) + 1
        self._task = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        # Stopped by ``_closing``, not by cancel, so a flush is never cut mid-transaction.
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.flush_interval_seconds)
            try:
                await self.flush()
            except Exception:
                # Lines stay pending; the next flush (or close) writes them.
                log.exception("run %s: log flush failed", self.run_id)

    def write(self, source: str, data: bytes) -> None:
        """Accept raw output of ``source``; complete lines are queued for the next flush."""
        if self.truncated:
            return
        room = self.max_bytes - self.total_bytes
        if len(data) > room:
            data = data[: max(room, 0)]
            self.truncated = True
        buf = self._partial.setdefault(source, bytearray())
        buf.extend(data)
        self.total_bytes += len(data)
        while (nl := buf.find(b"\n")) >= 0:
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            self._pending.append(_Pending(source, "info", line))
        if self.truncated:
            self._close_partial(source)
            note = f"[runplane] output truncated: this run exceeded {self.max_bytes} bytes\n"
            self._pending.append(_Pending("orchestrator", "warning", note.encode()))

    def note(self, message: str, level: str = "info") -> None:
        """A line of runplane's own (``orchestrator`` source); never counted against the cap."""
        self._pending.append(_Pending("orchestrator", level, message.encode()))

    def block(self, text: str, source: str = "test_runner") -> None:
        """Complete lines written at once (one regression test's captured output)."""
        if self.truncated:
            return
        data = (text.rstrip("\n") + "\n").encode()
        self.total_bytes += len(data)
        for line in data.splitlines():
            self._pending.append(_Pending(source, "info", line))

    def end_of_stream(self, source: str) -> None:
        """A command of ``source`` ended: its unterminated last line is a line of its own."""
        self._close_partial(source)

    def _close_partial(self, source: str) -> None:
        buf = self._partial.get(source)
        if buf:
            self._pending.append(_Pending(source, "info", bytes(buf)))
            buf.clear()

    async def flush(self, final: bool = False) -> None:
        async with self._lock:
            if final:
                for source in list(self._partial):
                    self._close_partial(source)
            if not self._pending:
                return
            batch = list(self._pending)
            seq, offset = self._seq, self._offset
            rows: list[RunLogLine] = []
            for item in batch:
                text = item.data.decode("utf-8", errors="replace").rstrip("\r\n")
                for start in range(0, max(len(text), 1), MAX_LINE_CHARS):
                    message = text[start : start + MAX_LINE_CHARS]
                    rows.append(
                        RunLogLine(
                            run_id=self.run_id,
                            seq=seq,
                            byte_offset=offset,
                            source=item.source,
                            level=item.level,
                            message=message,
                        )
                    )
                    seq += 1
                    offset += len(message.encode()) + 1
            async with unit_of_work(self.sessions) as session:
                if self.owner is not None and not await run_store.owns(
                    session, self.run_id, self.owner
                ):
                    # The run was reaped or restarted: these lines belong to no attempt.
                    self._pending.clear()
                    self.truncated = True
                    return
                await log_store.append_lines(session, rows)
                await run_store.record_log_usage(
                    session, self.run_id, self.total_bytes, self.truncated
                )
            # Only after the commit: a failed write keeps the batch for the next attempt.
            del self._pending[: len(batch)]
            self._seq, self._offset = seq, offset

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            await self._task
        await self.flush(final=True)
