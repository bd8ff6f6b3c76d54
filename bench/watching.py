"""Benchmark of watching runs: live log latency, log resume cost and ``/metrics`` scrapes.

    .venv/bin/python bench/watching.py [--lines N] [--runs N,N,...] [--log-bytes N]
                                       [--out bench/results/watching.json]

The real app (as bench/run_engine.py: embedded SQLite, in-process workers, production
defaults except that rate limiting is off), measuring

(a) live log latency: a run printing a timestamped line every 50 ms, followed through
    ``GET /api/v1/runs/{id}/logs/stream``; per line, receive time - printed time;
(b) resume cost: time to the first event of ``/logs/stream`` from byte 0, the middle and
    near the end (``Last-Event-ID``) of a finished ~5 MB log, a full replay of it, and
    ``GET /logs/raw`` with ``Range: bytes=-1000``;
(c) ``GET /metrics`` latency with the runs table holding N finished runs (bulk-inserted
    bench rows, not executed runs).

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import platform
import random
import re
import shlex
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Engine

from run_engine import (
    TERMINAL_VALUES,
    Bench,
    make_repository,
    report,  # bench/ is on sys.path when a benchmark runs
    started,
    stats_ms,
)
from runplane import __version__
from runplane.config import Settings
from runplane.domain.permissions import Scope
from runplane.domain.status import RunStatus
from runplane.execution.log_writer import LogWriter
from runplane.services import accounts, log_stream, projects
from runplane.services import metrics as metrics_service
from runplane.store.database import unit_of_work
from runplane.store.models import Run, RunEvent, RunLogLine

TICKER = "bench/ticker"
FLOOD = "bench/flood"
BULK_REPOSITORIES = [f"bulk/project-{i}" for i in range(10)]
TICK_SECONDS = 0.05
#: Every line of the big log is this long, newline included.
FLOOD_LINE_BYTES = 100
RESUME_REPS = 20
RANGE_REQUESTS = 50
FULL_READS = 3
SCRAPES = 20
DEFAULT_OUT = Path(__file__).parent / "results" / "watching.json"
TICK = re.compile(r"tick (\d+\.\d+)")
PYTHON = shlex.quote(sys.executable)
#: Set inside ``statement_timer``: tasks started there inherit it (the streaming
#: transport's app task), the workers' and the reaper's, started before, do not.
_TIMED: ContextVar[bool] = ContextVar("bench_timed", default=False)


# ---- a streaming ASGI transport -----------------------------------------------------------


class _BodyStream(httpx.AsyncByteStream):
    """The response body as the app sends it; closing it is the client going away."""

    def __init__(
        self, chunks: asyncio.Queue[bytes | None], gone: asyncio.Event, task: asyncio.Task[None]
    ) -> None:
        self._chunks = chunks
        self._gone = gone
        self._task = task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), 5)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Like ``httpx.ASGITransport``, but the response is handed over once its headers are
    sent and its body arrives chunk by chunk (httpx's own transport waits for the whole
    response, so an open event stream would never be seen)."""

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 50001)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        body = b"".join([part async for part in request.stream])
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": self.client,
            "root_path": "",
        }
        loop = asyncio.get_running_loop()
        head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = loop.create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        gone = asyncio.Event()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                head.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body" and not gone.is_set():
                if message.get("body"):
                    chunks.put_nowait(message["body"])
                if not message.get("more_body", False):
                    chunks.put_nowait(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as error:
                if head.done():
                    raise  # after the headers: seen when the body is closed
                head.set_exception(error)
            finally:
                chunks.put_nowait(None)

        task = asyncio.create_task(run())
        waiting: set[asyncio.Future[Any]] = {head, task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not head.done():
            raise RuntimeError("the app returned without a response")
        status, headers = await head  # the app's error, if it failed before answering
        return httpx.Response(status, headers=headers, stream=_BodyStream(chunks, gone, task))


# ---- Server-Sent Events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sse:
    kind: str  # log | end | comment
    id: str | None
    data: dict[str, Any]
    #: time.time() and time.perf_counter() when its last byte was received.
    wall: float
    perf: float


async def sse_events(response: httpx.Response) -> AsyncIterator[Sse]:
    buf = ""
    async for text in response.aiter_text():
        buf += text
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            wall, perf = time.time(), time.perf_counter()
            if block.startswith(":"):
                yield Sse("comment", None, {}, wall, perf)
                continue
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            yield Sse(fields["event"], fields.get("id"), json.loads(fields["data"]), wall, perf)


def stream_path(run_id: int) -> str:
    return f"/api/v1/runs/{run_id}/logs/stream"


# ---- set-up ---------------------------------------------------------------------------------


@dataclass
class Watch:
    bench: Bench
    #: Over the streaming transport, for /logs/stream.
    streams: httpx.AsyncClient
    metrics_headers: dict[str, str] = field(default_factory=dict)


def ticker_command(lines: int) -> str:
    code = (
        "import time; [(print('tick %.6f' % time.time(), flush=True), "
        f"time.sleep({TICK_SECONDS})) for i in range({lines})]"
    )
    return f'{PYTHON} -c "{code}"'


def flood_command(lines: int) -> str:
    filler = "x" * (FLOOD_LINE_BYTES - len("flood 0000000 \n"))
    code = (
        f"import sys; sys.stdout.write(''.join('flood %07d {filler}\\n' % i "
        f"for i in range({lines})))"
    )
    return f'{PYTHON} -c "{code}"'


@contextlib.asynccontextmanager
async def watching(
    settings: Settings, repo: Path, sha: str, lines: int, flood_lines: int
) -> AsyncIterator[Watch]:
    async with started(settings, repo, sha) as bench:
        ctx = bench.ctx
        for repository, command in (
            (TICKER, ticker_command(lines)),
            (FLOOD, flood_command(flood_lines)),
        ):
            spec = projects.ProjectSpec(
                repository=repository, repo_url=str(repo), test_command=command
            )
            await projects.create(ctx, None, spec)
        # A scraper's token: metrics:read only.
        scraper = await accounts.issue_for_email(
            ctx, "bench@runplane.local", "scraper", [Scope.METRICS_READ], 1
        )
        # run_engine.started talks to the app over httpx's ASGI transport; the same app
        # serves the streaming one.
        transport = bench.client._transport
        assert isinstance(transport, httpx.ASGITransport)
        streaming = StreamingASGITransport(transport.app)
        async with httpx.AsyncClient(
            transport=streaming, base_url="http://bench", timeout=None
        ) as streams:
            yield Watch(bench, streams, {"Authorization": f"Bearer {scraper.token}"})


# ---- (a) live log latency -------------------------------------------------------------------


async def live_latency(watch: Watch, lines: int) -> dict[str, Any]:
    bench = watch.bench
    run_id = await bench.submit(TICKER)
    printed: list[float] = []
    received: list[float] = []
    tick_events = 0
    log_events = 0
    lines_per_event: list[int] = []
    last_tick_wall = end_wall = float("nan")
    async with asyncio.timeout(lines * TICK_SECONDS * 3 + 120):
        async with watch.streams.stream(
            "GET", stream_path(run_id), headers=bench.headers
        ) as response:
            assert response.status_code == 200, response.status_code
            async for sse in sse_events(response):
                if sse.kind == "end":
                    end_wall = sse.wall
                    break
                if sse.kind != "log":
                    continue
                log_events += 1
                ticks = [float(m.group(1)) for m in TICK.finditer(sse.data["text"])]
                if ticks:
                    tick_events += 1
                    lines_per_event.append(len(ticks))
                    printed += ticks
                    received += [sse.wall] * len(ticks)
                    last_tick_wall = sse.wall
    run = await bench.wait_status(run_id, set(TERMINAL_VALUES))
    # When each line was written: the log writer's flush (the row's created_at).
    async with unit_of_work(bench.ctx.sessions) as session:
        rows = await session.execute(
            select(RunLogLine.message, RunLogLine.created_at).where(
                RunLogLine.run_id == run_id, RunLogLine.message.startswith("tick ")
            )
        )
        written = {message[5:]: created.timestamp() for message, created in rows.all()}
    write_delay, stream_delay = [], []
    for at, got in zip(printed, received, strict=True):
        flushed = written.get(f"{at:.6f}")
        if flushed is not None:
            write_delay.append(flushed - at)
            stream_delay.append(got - flushed)
    return {
        "run_status": run.status,
        "lines_printed": lines,
        "tick_lines_received": len(printed),
        "log_events": log_events,
        "events_with_ticks": tick_events,
        "lines_per_event_mean": round(len(printed) / tick_events, 2) if tick_events else 0,
        "lines_per_event_max": max(lines_per_event, default=0),
        "latency_ms": stats_ms([got - at for at, got in zip(printed, received, strict=True)]),
        "printed_to_written_ms": stats_ms(write_delay),
        "written_to_received_ms": stats_ms(stream_delay),
        "last_line_to_end_event_ms": round((end_wall - last_tick_wall) * 1000, 1),
    }


# ---- (b) resume cost ------------------------------------------------------------------------


async def first_event(watch: Watch, run_id: int, offset: int) -> tuple[float, Sse]:
    headers = dict(watch.bench.headers)
    if offset:
        headers["Last-Event-ID"] = str(offset)
    t0 = time.perf_counter()
    async with watch.streams.stream("GET", stream_path(run_id), headers=headers) as response:
        assert response.status_code == 200, response.status_code
        async for sse in sse_events(response):
            if sse.kind in ("log", "end"):
                return sse.perf - t0, sse
    raise RuntimeError("the stream ended without an event")


async def full_replay(watch: Watch, run_id: int) -> tuple[float, int, int]:
    """Seconds, bytes and log events of the whole log from byte 0 to ``end``."""
    t0 = time.perf_counter()
    size = events = 0
    async with watch.streams.stream(
        "GET", stream_path(run_id), headers=watch.bench.headers
    ) as response:
        async for sse in sse_events(response):
            if sse.kind == "log":
                events += 1
                size = sse.data["next_offset"]
            elif sse.kind == "end":
                return time.perf_counter() - t0, size, events
    raise RuntimeError("the stream ended without an end event")


async def resume_cost(watch: Watch, flood_lines: int) -> dict[str, Any]:
    bench = watch.bench
    run_id = await bench.submit(FLOOD)
    run = await bench.wait_status(run_id, set(TERMINAL_VALUES), timeout=600, interval=0.1)
    head = await bench.client.head(f"/api/v1/runs/{run_id}/logs/raw", headers=bench.headers)
    size = int(head.headers["content-length"])
    async with unit_of_work(bench.ctx.sessions) as session:
        line_count = await session.scalar(
            select(func.count()).select_from(RunLogLine).where(RunLogLine.run_id == run_id)
        )
    offsets = {"offset 0": 0, "middle": size // 2, "near end (-1000)": max(size - 1000, 0)}
    firsts: dict[str, list[float]] = {label: [] for label in offsets}
    first_bytes: dict[str, int] = {}
    slowest: dict[str, dict[str, Any]] = {}
    for rep in range(RESUME_REPS):
        for label, offset in offsets.items():
            with statement_timer() as statements:
                seconds, sse = await first_event(watch, run_id, offset)
            firsts[label].append(seconds)
            first_bytes[label] = len(sse.data.get("text", "").encode())
            if rep == RESUME_REPS - 1 and statements:
                sql, parameters, taken = max(statements, key=lambda found: found[2])
                slowest[label] = {
                    "sql": " ".join(sql.split()),
                    "ms": round(taken * 1000, 2),
                    "plan": await query_plan(watch, sql, parameters),
                }
    replays = [await full_replay(watch, run_id) for _ in range(FULL_READS)]
    for _, replayed, _ in replays:
        assert replayed == size, (replayed, size)

    async def timed_get(headers: dict[str, str]) -> tuple[float, httpx.Response]:
        t0 = time.perf_counter()
        response = await bench.client.get(
            f"/api/v1/runs/{run_id}/logs/raw", headers={**bench.headers, **headers}
        )
        return time.perf_counter() - t0, response

    tail: list[float] = []
    for _ in range(RANGE_REQUESTS):
        seconds, response = await timed_get({"Range": "bytes=-1000"})
        assert response.status_code == 206 and len(response.content) == min(1000, size)
        tail.append(seconds)
    whole: list[float] = []
    for _ in range(FULL_READS):
        seconds, response = await timed_get({})
        assert response.status_code == 200 and len(response.content) == size
        whole.append(seconds)
    assert run.started_at is not None and run.completed_at is not None
    replay_seconds = [seconds for seconds, _, _ in replays]
    return {
        "run_status": run.status,
        "log_bytes": size,
        "log_lines": line_count,
        "flood_lines": flood_lines,
        "run_started_to_completed_s": round((run.completed_at - run.started_at).total_seconds(), 2),
        "first_event_ms": {label: stats_ms(values) for label, values in firsts.items()},
        "first_event_bytes": first_bytes,
        "first_event_slowest_query": slowest,
        "full_replay_ms": stats_ms(replay_seconds),
        "full_replay_events": replays[0][2],
        "full_replay_mb_per_s": round(size / 1e6 / sorted(replay_seconds)[len(replays) // 2], 2),
        "raw_range_last_1000_ms": stats_ms(tail),
        "raw_whole_ms": stats_ms(whole),
    }


# ---- (c) /metrics scrapes -------------------------------------------------------------------


async def bulk_insert_runs(watch: Watch, count: int, rng: random.Random) -> float:
    """``count`` finished runs (and a ``canceling`` event for the canceled ones), written
    straight into the tables: bench data, not executed runs. Returns the seconds taken."""
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    statuses = [RunStatus.PASSED, RunStatus.FAILED, RunStatus.ERROR, RunStatus.CANCELED]
    async with unit_of_work(watch.bench.ctx.sessions) as session:
        next_id = (await session.scalar(select(func.max(Run.id))) or 0) + 1
        for start in range(0, count, 5000):
            runs: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for run_id in range(next_id + start, next_id + min(start + 5000, count)):
                status = rng.choices(statuses, weights=(70, 20, 5, 5))[0]
                created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
                begun = created + timedelta(seconds=rng.expovariate(1 / 2))
                completed = begun + timedelta(seconds=rng.lognormvariate(4, 1))
                runs.append(
                    {
                        "id": run_id,
                        "uuid": f"00000000-0000-4000-8000-{run_id:012d}",
                        "repository": rng.choice(BULK_REPOSITORIES),
                        "branch": "master",
                        "commit_sha": watch.bench.sha,
                        "platform": "linux",
                        "priority": 0,
                        "status": status.value,
                        "created_at": created,
                        "queued_at": created,
                        "started_at": begun,
                        "completed_at": completed,
                        "exit_code": 0 if status is RunStatus.PASSED else 1,
                        "log_bytes": 0,
                        "log_truncated": False,
                    }
                )
                if status is RunStatus.CANCELED:
                    events.append(
                        {
                            "run_id": run_id,
                            "created_at": completed - timedelta(seconds=rng.uniform(0.1, 3)),
                            "state": "canceling",
                            "status": RunStatus.CANCELING.value,
                            "message": "Cancel requested.",
                            "actor": "bench",
                        }
                    )
            await session.execute(insert(Run), runs)
            if events:
                await session.execute(insert(RunEvent), events)
    return time.perf_counter() - t0


@contextlib.contextmanager
def statement_timer() -> Iterator[list[tuple[str, Any, float]]]:
    """(SQL, parameters, seconds) of every statement executed inside, by this task or the
    tasks it starts (SQLAlchemy's greenlets carry the context over)."""
    found: list[tuple[str, Any, float]] = []
    starts: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _TIMED.get():
            starts[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        t0 = starts.pop(id(cursor), None)
        if t0 is not None and statement not in ("BEGIN", "COMMIT", "ROLLBACK"):
            found.append((statement, parameters, time.perf_counter() - t0))

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    token = _TIMED.set(True)
    try:
        yield found
    finally:
        _TIMED.reset(token)
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def _query_label(statement: str) -> str:
    text = " ".join(statement.split())
    if "julianday" in text:
        return "run_timings (3 histograms, one pass)"
    if "FROM runs GROUP BY" in text:
        return "runs by status and repository"
    if "webhook_deliveries" in text:
        return "webhook deliveries by state"
    return text[:60]


async def scrape_cost(watch: Watch, totals: Sequence[int]) -> dict[str, Any]:
    bench = watch.bench
    rng = random.Random(20261201)
    out: dict[str, Any] = {}
    inserted = 0
    for total in totals:
        insert_seconds = await bulk_insert_runs(watch, total - inserted, rng)
        inserted = total
        async with unit_of_work(bench.ctx.sessions) as session:
            in_table = await session.scalar(select(func.count()).select_from(Run))
        latencies: list[float] = []
        size = 0
        for _ in range(SCRAPES):
            t0 = time.perf_counter()
            response = await bench.client.get("/metrics", headers=watch.metrics_headers)
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
            size = len(response.content)
        # The queries behind one scrape, timed at the driver.
        per_query: dict[str, list[float]] = {}
        for _ in range(5):
            with statement_timer() as statements:
                await metrics_service.snapshot(bench.ctx)
            for statement, _, seconds in statements:
                per_query.setdefault(_query_label(statement), []).append(seconds)
        slowest = max(statements, key=lambda found: found[2])
        out[str(total)] = {
            "bulk_runs": total,
            "runs_in_table": in_table,
            "insert_seconds": round(insert_seconds, 2),
            "scrape_ms": stats_ms(latencies),
            "page_bytes": size,
            "queries_ms": {label: stats_ms(values) for label, values in per_query.items()},
            "slowest_query_plan": await query_plan(watch, slowest[0], slowest[1]),
        }
    return out


async def query_plan(watch: Watch, statement: str, parameters: Any) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of ``statement``, one step a line."""
    async with unit_of_work(watch.bench.ctx.reads) as session:
        conn = await session.connection()
        rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return [str(row[-1]) for row in rows.all()]


# ---- main -------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _ms(s: dict[str, Any], key: str) -> str:
    return f"{s[key]:.1f}"


def print_table(result: dict[str, Any]) -> None:
    a, b, c = result["a"], result["b"], result["c"]
    table = Table(title="runplane: watching runs (SQLite, in-process workers, over ASGI)")
    table.add_column("figure")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("max ms", justify="right")
    table.add_column("n", justify="right")
    table.add_column("notes")

    def row(label: str, s: dict[str, Any], notes: str = "") -> None:
        table.add_row(label, _ms(s, "p50"), _ms(s, "p99"), _ms(s, "max"), str(s["n"]), notes)

    row(
        "(a) printed → received (stream)",
        a["latency_ms"],
        f"{a['tick_lines_received']}/{a['lines_printed']} lines in {a['events_with_ticks']} "
        f"events ({a['lines_per_event_mean']} lines/event, max {a['lines_per_event_max']})",
    )
    row("    printed → written (DB row)", a["printed_to_written_ms"], "log writer flush")
    row("    written → received", a["written_to_received_ms"], "stream poll")
    table.add_section()
    log_mb = b["log_bytes"] / 1e6
    for label, s in b["first_event_ms"].items():
        row(
            f"(b) first event, {label}",
            s,
            f"{log_mb:.2f} MB log, {b['log_lines']} lines"
            if label == "offset 0"
            else "Last-Event-ID",
        )
    row(
        "    full replay 0 → end",
        b["full_replay_ms"],
        f"{b['full_replay_events']} events, {b['full_replay_mb_per_s']} MB/s",
    )
    row("    /logs/raw Range: bytes=-1000", b["raw_range_last_1000_ms"], "206")
    row("    /logs/raw whole log", b["raw_whole_ms"], f"{log_mb:.2f} MB")
    table.add_section()
    for total, figures in c.items():
        timings = figures["queries_ms"].get("run_timings (3 histograms, one pass)")
        notes = f"{figures['runs_in_table']} rows, {figures['page_bytes']} B page"
        if timings:
            notes += f"; run_timings query p50 {timings['p50']:.1f} ms"
        row(f"(c) GET /metrics, {int(total):,} runs", figures["scrape_ms"], notes)
    Console(width=160).print(table)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    flood_lines = max(args.log_bytes // FLOOD_LINE_BYTES, 1)
    with tempfile.TemporaryDirectory(prefix="runplane-bench-") as tmp:
        root = Path(tmp)
        sha = make_repository(root / "repo")
        # The limiter would answer repeated scrapes and reads with 429s.
        settings = Settings(data_dir=root / "data", rate_limit_enabled=False)
        started_at = time.perf_counter()
        async with watching(settings, root / "repo", sha, args.lines, flood_lines) as watch:
            t0 = time.perf_counter()
            a = await live_latency(watch, args.lines)
            a["seconds"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            b = await resume_cost(watch, flood_lines)
            b["seconds"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            c = await scrape_cost(watch, args.runs)
            c_seconds = round(time.perf_counter() - t0, 1)
        poll = inspect.signature(log_stream.follow_log).parameters["poll_seconds"].default
        return {
            "meta": {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "runplane": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "cpu_model": _cpu_model(),
                "database": "sqlite",
                "transport": "ASGI in process (streams: a chunk-by-chunk ASGI transport)",
                "c_seconds": c_seconds,
                "total_seconds": round(time.perf_counter() - started_at, 1),
            },
            "settings": {
                "workers": settings.workers,
                "lines": args.lines,
                "tick_seconds": TICK_SECONDS,
                "log_bytes_asked": args.log_bytes,
                "runs": list(args.runs),
                "resume_reps": RESUME_REPS,
                "range_requests": RANGE_REQUESTS,
                "scrapes": SCRAPES,
                "log_flush_interval_seconds": LogWriter.flush_interval_seconds,
                "log_stream_poll_seconds": poll,
                "log_stream_max_chunk_bytes": log_stream.MAX_CHUNK_BYTES,
                "log_stream_poll_lines": log_stream.POLL_LINES,
                "max_log_bytes": settings.max_log_bytes,
                "bulk_runs_note": "(c) rows are bulk-inserted with SQLAlchemy core "
                "(finished runs over 30 days, 70/20/5/5 % passed/failed/error/canceled, "
                "10 repositories, a canceling event per canceled run), not executed",
            },
            "a": a,
            "b": b,
            "c": c,
        }


def _totals(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of run counts: {text!r}") from None
    if not values or any(v < 1 for v in values) or values != sorted(set(values)):
        raise argparse.ArgumentTypeError("run counts must be positive and increasing")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=200, help="lines printed in (a), 50 ms apart")
    parser.add_argument(
        "--runs",
        type=_totals,
        default=[10_000, 50_000],
        help="runs in the table for the scrapes of (c), increasing (default 10000,50000)",
    )
    parser.add_argument(
        "--log-bytes",
        type=int,
        default=4_900_000,
        help="size of the finished log of (b) (max_log_bytes is 5 MB)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.log_bytes < FLOOD_LINE_BYTES:
        parser.error(f"--lines must be at least 1, --log-bytes at least {FLOOD_LINE_BYTES}")
    return report(main_async(args), print_table, args.out)


if __name__ == "__main__":
    sys.exit(main())
