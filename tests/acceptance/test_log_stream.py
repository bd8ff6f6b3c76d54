"""Following a run's raw log (``/logs/stream``, SSE) and reading it by range (``/logs/raw``).

Streams that must be read while they are open go over real HTTP (``live_server``):
httpx's ASGI transport hands a response over only once it is complete. Streams that
end by themselves (the run is over, or ``log_stream_max_seconds``) also go over ASGI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message
from starlette.types import Scope as AsgiScope

from runplane.api.sse import EventStreamResponse, encode_log_event
from runplane.config import Settings
from runplane.domain.permissions import Scope
from runplane.domain.status import RunStatus
from runplane.execution.log_writer import MAX_LINE_CHARS, LogWriter
from runplane.services import projects
from runplane.services.log_stream import KeepAlive, LogChunk, LogEnd, LogEvent
from tests.conftest import Api, DemoRepo, LiveServer, _api, eventually, make_settings, serve_live

SP_TERMINAL = {"pass", "fail", "error", "canceled"}
#: Prints lines with pauses (so the log grows while it is followed), some of them not
#: ASCII, and ends with a line without a newline.
TALKER = (
    "python3 -u -c 'import time; "
    '[(print("line", i, "é" * i, flush=True), time.sleep(0.08)) for i in range(40)]; '
    'print("tail", end="")\''
)
#: About 150 kB at once: more than one 64 KiB event.
FLOOD = 'python3 -c \'print("\\n".join("row %05d ü " % i + "x" * 40 for i in range(3000)))\''


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A stream that should have ended but did not fails the test instead of hanging it.
    return make_settings(
        tmp_path / "data", log_stream_keepalive_seconds=0.2, log_stream_max_seconds=30
    )


@pytest.fixture
def idle_server(settings: Settings) -> Iterator[LiveServer]:
    """Over real HTTP, without workers: runs stay queued."""
    yield from serve_live(settings, run_workers=False)


# ---- helpers ----------------------------------------------------------------------------


@dataclass
class Event:
    kind: str  # log | end | comment
    id: str | None
    data: dict[str, Any]


def _parse(block: str) -> Event:
    if block.startswith(":"):
        return Event("comment", None, {"text": block[1:].strip()})
    fields = dict(line.split(": ", 1) for line in block.split("\n"))
    assert set(fields) == {"id", "event", "data"}, block
    return Event(fields["event"], fields["id"], json.loads(fields["data"]))


def parse_all(body: str) -> list[Event]:
    assert body == "" or body.endswith("\n\n"), body[-50:]
    return [_parse(block) for block in body.split("\n\n") if block]


async def read_events(response: httpx.Response) -> AsyncGenerator[Event, None]:
    buf = ""
    async for text in response.aiter_text():
        buf += text
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            yield _parse(block)


def text_of(events: list[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.kind == "log")


def assert_contiguous(events: list[Event], start: int) -> None:
    """Each chunk starts where the one before ended; ids are the byte to resume from."""
    position = start
    for event in events:
        if event.kind == "log":
            assert event.data["offset"] == position
            assert event.data["next_offset"] > position
            assert event.id == str(event.data["next_offset"])
            assert len(event.data["text"].encode()) <= 64 * 1024
            position = event.data["next_offset"]
        if event.kind == "end":
            assert event.id == str(event.data["offset"])


async def stream(api: Api, run_id: int, headers: dict[str, str], **params: Any) -> list[Event]:
    """A whole stream over ASGI (it must end by itself)."""
    extra = params.pop("extra_headers", {})
    response = await api.client.get(
        f"/api/v1/runs/{run_id}/logs/stream", headers={**headers, **extra}, params=params
    )
    assert response.status_code == 200, response.text
    return parse_all(response.text)


async def raw(api: Api, run_id: int, headers: dict[str, str]) -> bytes:
    response = await api.client.get(f"/api/v1/runs/{run_id}/logs/raw", headers=headers)
    assert response.status_code == 200, response.text
    return response.content


async def queued_run_with_log(api: Api, demo_repo: DemoRepo, lines: list[bytes]) -> int:
    """A run that stays queued (no workers) whose log holds ``lines``."""
    await api.project(demo_repo)
    run = await api.submit(await api.headers(), demo_repo.passing_sha)
    await write_log(api, run["run_id"], lines)
    return int(run["run_id"])


async def write_log(api: Api, run_id: int, lines: list[bytes]) -> None:
    writer = LogWriter(api.ctx.sessions, run_id, max_bytes=10_000_000)
    await writer.start()
    for line in lines:
        writer.write("test_runner", line)
    await writer.close()


LINES = [
    b"first line\n",
    "zweite Zeile mit Umlauten: äöü\n".encode(),
    b"x" * (MAX_LINE_CHARS + 10) + b"\n",  # stored as two lines
    "emoji 🎉 and more\n".encode(),
    b"last\n",
]


def expected_raw(lines: list[bytes]) -> bytes:
    """What the log writer makes of ``lines``: long ones split, each ending in a newline."""
    out = b""
    for line in lines:
        text = line.decode().rstrip("\n")
        for start in range(0, max(len(text), 1), MAX_LINE_CHARS):
            out += text[start : start + MAX_LINE_CHARS].encode() + b"\n"
    return out


# ---- the wire format --------------------------------------------------------------------


def test_events_are_encoded_exactly_as_documented() -> None:
    chunk = LogChunk(offset=3, next_offset=12, text='é "q"\n')
    assert encode_log_event(chunk) == (
        b"id: 12\nevent: log\n"
        b'data: {"offset": 3, "next_offset": 12, "text": "\xc3\xa9 \\"q\\"\\n"}\n\n'
    )
    assert encode_log_event(KeepAlive()) == b": keep-alive\n\n"
    assert encode_log_event(LogEnd(RunStatus.TIMED_OUT, 12)) == (
        b'id: 12\nevent: end\ndata: {"status": "timed_out", "offset": 12}\n\n'
    )


# ---- following a live run over real HTTP ------------------------------------------------


def _talker_project(live: LiveServer, demo_repo: DemoRepo, repository: str) -> None:
    spec = projects.ProjectSpec(
        repository=repository, repo_url=str(demo_repo.path), test_command=TALKER
    )
    live.call(projects.create(live.ctx, None, spec))


async def _submit(client: httpx.AsyncClient, repository: str, sha: str) -> int:
    created = await client.post(
        "/api/v1/runs", json={"repository": repository, "commit_sha": sha, "platform": "linux"}
    )
    assert created.status_code == 202, created.text
    return int(created.json()["run_id"])


async def test_stream_follows_a_growing_log_to_its_end(
    live_server: LiveServer, demo_repo: DemoRepo
) -> None:
    _talker_project(live_server, demo_repo, "demo/talker")
    h = {"Authorization": f"Bearer {live_server.token()}"}
    async with httpx.AsyncClient(base_url=live_server.url, headers=h, timeout=60) as client:
        run_id = await _submit(client, "demo/talker", demo_repo.passing_sha)
        events: list[Event] = []
        statuses_while_streaming: set[str] = set()
        url = f"/api/v1/runs/{run_id}/logs/stream"
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            async for event in read_events(response):
                events.append(event)
                if event.kind == "log":
                    run = (await client.get(f"/api/v1/runs/{run_id}")).json()
                    statuses_while_streaming.add(run["status"])
        run = (await client.get(f"/api/v1/runs/{run_id}")).json()
        whole = await client.get(f"/api/v1/runs/{run_id}/logs/raw")

    logs = [e for e in events if e.kind == "log"]
    assert len(logs) >= 3, "the log should have arrived in several pieces"
    assert "running" in statuses_while_streaming, "lines should arrive while the run runs"
    assert events[-1].kind == "end"
    assert [e.kind for e in events].count("end") == 1
    assert_contiguous(events, 0)
    assert text_of(events) == whole.text
    assert events[-1].data == {"status": run["internal_status"], "offset": len(whole.content)}
    assert run["internal_status"] == "passed"
    assert whole.headers["x-run-status"] == "passed"
    assert "line 39 " + "é" * 39 + "\n" in whole.text
    assert "tail\n" in whole.text


async def test_reconnecting_with_last_event_id_mid_run_has_no_gap_or_duplicate(
    live_server: LiveServer, demo_repo: DemoRepo
) -> None:
    _talker_project(live_server, demo_repo, "demo/reconnect")
    h = {"Authorization": f"Bearer {live_server.token()}"}
    async with httpx.AsyncClient(base_url=live_server.url, headers=h, timeout=60) as client:
        run_id = await _submit(client, "demo/reconnect", demo_repo.passing_sha)
        url = f"/api/v1/runs/{run_id}/logs/stream"
        first: list[Event] = []
        async with client.stream("GET", url) as response, aclosing(read_events(response)) as it:
            async for event in it:
                first.append(event)
                if sum(e.kind == "log" for e in first) == 2:
                    break  # drop the connection mid-run
        resume_at = next(e.id for e in reversed(first) if e.kind == "log")
        assert resume_at is not None
        run = (await client.get(f"/api/v1/runs/{run_id}")).json()
        assert run["status"] == "running", "the reconnect should happen while the run runs"
        # ?offset= is overruled by Last-Event-ID, as a browser's EventSource would send it.
        async with client.stream(
            "GET", url, params={"offset": 0}, headers={"Last-Event-ID": resume_at}
        ) as response:
            second = [event async for event in read_events(response)]
        whole = (await client.get(f"/api/v1/runs/{run_id}/logs/raw")).text

    assert second[0].kind in ("log", "comment")
    assert_contiguous(second, int(resume_at))
    assert text_of(first) + text_of(second) == whole
    assert second[-1].kind == "end"


async def test_a_client_going_away_ends_the_stream_on_the_server(
    idle_server: LiveServer, demo_repo: DemoRepo
) -> None:
    """No task keeps polling for a client that left (a queued run's stream never ends)."""
    live = idle_server
    spec = projects.ProjectSpec(
        repository="demo/calculator", repo_url=str(demo_repo.path), test_command="true"
    )
    live.call(projects.create(live.ctx, None, spec))
    h = {"Authorization": f"Bearer {live.token()}"}

    async def streaming_tasks() -> int:
        names = ("stream_response", "listen_for_disconnect")
        return sum(any(n in repr(t.get_coro()) for n in names) for t in asyncio.all_tasks())

    async with httpx.AsyncClient(base_url=live.url, headers=h, timeout=30) as client:
        created = await client.post(
            "/api/v1/runs",
            json={
                "repository": "demo/calculator",
                "commit_sha": demo_repo.passing_sha,
                "platform": "linux",
            },
        )
        run_id = created.json()["run_id"]
        url = f"/api/v1/runs/{run_id}/logs/stream"
        async with client.stream("GET", url) as response, aclosing(read_events(response)) as it:
            async for event in it:
                assert event.kind == "comment"
                assert live.call(streaming_tasks()) == 2
                break

    async def gone() -> bool:
        return live.call(streaming_tasks()) == 0

    await eventually(gone, timeout=10)


# ---- resuming a finished run's log (over ASGI) ------------------------------------------


async def test_resume_from_any_offset_of_a_finished_run(api: Api, demo_repo: DemoRepo) -> None:
    await api.project(demo_repo, repository="demo/flood", test_command=FLOOD)
    h = await api.headers()
    run = await api.submit(h, demo_repo.passing_sha, repository="demo/flood")
    done = await api.wait_for(h, run["run_id"], SP_TERMINAL)
    run_id = run["run_id"]
    whole = await raw(api, run_id, h)
    assert len(whole) > 150_000

    events = await stream(api, run_id, h)
    assert len([e for e in events if e.kind == "log"]) >= 3  # 64 KiB per event at most
    assert_contiguous(events, 0)
    assert text_of(events).encode() == whole
    assert events[-1].data == {"status": done["internal_status"], "offset": len(whole)}

    # From an event's id (Last-Event-ID wins over ?offset=).
    mid = int(events[1].id or 0)
    resumed = await stream(api, run_id, h, offset=7, extra_headers={"Last-Event-ID": str(mid)})
    assert resumed[0].data["offset"] == mid
    assert_contiguous(resumed, mid)
    assert text_of(resumed).encode() == whole[mid:]

    # From inside a line, by ?offset=.
    inside = whole.index(b"row 01234") + 5
    from_offset = await stream(api, run_id, h, offset=inside)
    assert from_offset[0].data["offset"] == inside
    assert from_offset[0].data["text"].startswith("1234 ü ")
    assert text_of(from_offset).encode() == whole[inside:]

    # At or past the end: nothing but the end, which says how long the log is.
    for offset in (len(whole), len(whole) + 1000):
        tail = await stream(api, run_id, h, offset=offset)
        assert [e.kind for e in tail] == ["end"]
        assert tail[0].data["offset"] == len(whole)


async def test_stream_waits_for_a_log_then_ends_when_the_run_does(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    """A queued run has no log yet: not a 404, the stream waits; lines written meanwhile
    arrive, and once the run is over (canceled here) the stream sends ``end``."""
    api = api_no_workers
    await api.project(demo_repo)
    h = await api.headers()
    run_id = (await api.submit(h, demo_repo.passing_sha))["run_id"]
    following = asyncio.create_task(stream(api, run_id, h, offset=6))
    await asyncio.sleep(0.6)
    await write_log(api, run_id, LINES[:2])
    await asyncio.sleep(0.6)
    await write_log(api, run_id, LINES[2:])
    canceled = await api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=h)
    assert canceled.status_code == 202, canceled.text
    events = await asyncio.wait_for(following, 20)

    expected = expected_raw(LINES)
    assert "comment" in [e.kind for e in events]  # keep-alives while it waited
    assert_contiguous(events, 6)
    assert text_of(events).encode() == expected[6:]
    assert events[-1].data == {"status": "canceled", "offset": len(expected)}
    assert await raw(api, run_id, h) == expected


async def test_keep_alives_and_the_time_limit_of_a_stream(
    tmp_path: Path, demo_repo: DemoRepo
) -> None:
    settings = make_settings(
        tmp_path / "data", log_stream_keepalive_seconds=0.2, log_stream_max_seconds=1.2
    )
    async for api in _api(settings, run_workers=False):
        await api.project(demo_repo)
        h = await api.headers()
        run_id = (await api.submit(h, demo_repo.passing_sha))["run_id"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await api.client.get(f"/api/v1/runs/{run_id}/logs/stream", headers=h)
        took = loop.time() - started
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = parse_all(response.text)
        assert 1.1 < took < 5
        # Closed without end: the client reconnects with its Last-Event-ID.
        assert {e.kind for e in events} == {"comment"}
        assert len(events) >= 4
        assert all(e.data["text"] == "keep-alive" for e in events)


# ---- the response closes its events whatever ends it -----------------------------------


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
@pytest.mark.parametrize("client_reads", [True, False])
async def test_disconnect_closes_the_event_iterator(spec_version: str, client_reads: bool) -> None:
    """Whether the generator is asleep (client reads) or stuck behind a slow send."""
    closed = asyncio.Event()
    sent: list[Message] = []
    first_body = asyncio.Event()
    never = asyncio.Event()

    async def events() -> AsyncIterator[LogEvent]:
        try:
            while True:
                yield KeepAlive()
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def receive() -> Message:
        await first_body.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            first_body.set()
            if not client_reads:
                await never.wait()

    scope: AsgiScope = {"type": "http", "method": "GET", "asgi": {"spec_version": spec_version}}
    response = EventStreamResponse(events())
    await asyncio.wait_for(response(scope, receive, send), 5)
    assert closed.is_set()
    assert sent[0]["type"] == "http.response.start"
    assert sent[1]["body"] == b": keep-alive\n\n"


# ---- errors and permissions ------------------------------------------------------------


@pytest.mark.parametrize("path", ["stream", "raw"])
async def test_unknown_run_is_404(api_no_workers: Api, path: str) -> None:
    h = await api_no_workers.headers()
    r = await api_no_workers.client.get(f"/api/v1/runs/999999/logs/{path}", headers=h)
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert set(r.json()) == {"code", "message", "details"}
    head = await api_no_workers.client.head("/api/v1/runs/999999/logs/raw", headers=h)
    assert head.status_code == 404


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"offset": "abc"}, {}),
        ({"offset": "-1"}, {}),
        ({"offset": str(10**12 + 1)}, {}),
        ({"offset": "1.5"}, {}),
        ({}, {"Last-Event-ID": "abc"}),
        ({}, {"Last-Event-ID": "-5"}),
        ({}, {"Last-Event-ID": " 5"}),
        ({}, {"Last-Event-ID": str(10**12 + 1)}),
        ({"offset": "3"}, {"Last-Event-ID": "x3"}),
    ],
)
async def test_malformed_offsets_are_400(
    api_no_workers: Api, demo_repo: DemoRepo, params: dict[str, str], headers: dict[str, str]
) -> None:
    api = api_no_workers
    run_id = await queued_run_with_log(api, demo_repo, LINES)
    h = await api.headers()
    r = await api.client.get(
        f"/api/v1/runs/{run_id}/logs/stream", headers={**h, **headers}, params=params
    )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "validation_error"
    assert set(body) == {"code", "message", "details"}


@pytest.mark.parametrize("path", ["stream", "raw"])
async def test_needs_a_token_with_system_read(
    api_no_workers: Api, demo_repo: DemoRepo, path: str
) -> None:
    api = api_no_workers
    run_id = await queued_run_with_log(api, demo_repo, LINES)
    url = f"/api/v1/runs/{run_id}/logs/{path}"
    assert (await api.client.get(url)).status_code == 401
    assert (await api.client.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
    weak = await api.headers(scopes=(Scope.RUNS_READ, Scope.RESULTS_READ))
    denied = await api.client.get(url, headers=weak)
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    if path == "raw":
        assert (await api.client.head(url, headers=weak)).status_code == 403


# ---- /logs/raw and Range ---------------------------------------------------------------


async def test_raw_log_whole_and_head(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    run_id = await queued_run_with_log(api, demo_repo, LINES)
    h = await api.headers()
    expected = expected_raw(LINES)
    url = f"/api/v1/runs/{run_id}/logs/raw"

    r = await api.client.get(url, headers=h)
    assert r.status_code == 200
    assert r.content == expected
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(len(expected))
    assert r.headers["x-run-status"] == "queued"
    assert "content-range" not in r.headers

    head = await api.client.head(url, headers=h)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "accept-ranges", "content-length", "x-run-status"):
        assert head.headers[name] == r.headers[name]

    ranged = await api.client.head(url, headers={**h, "Range": "bytes=2-5"})
    assert ranged.status_code == 206
    assert ranged.content == b""
    assert ranged.headers["content-length"] == "4"
    assert ranged.headers["content-range"] == f"bytes 2-5/{len(expected)}"


async def test_raw_log_ranges(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    api = api_no_workers
    run_id = await queued_run_with_log(api, demo_repo, LINES)
    h = await api.headers()
    data = expected_raw(LINES)
    size = len(data)
    url = f"/api/v1/runs/{run_id}/logs/raw"
    mid_line = data.index(b"Umlauten") + 3
    split = data.index(b"x\nx")  # where the writer cut the long line in two

    cases = {
        "bytes=0-9": (0, 9),
        f"bytes={mid_line}-{mid_line + 20}": (mid_line, mid_line + 20),
        f"bytes={split - 50}-{split + 5}": (split - 50, split + 5),
        f"bytes={mid_line}-": (mid_line, size - 1),
        "bytes=-5": (size - 5, size - 1),
        "bytes=-100000": (0, size - 1),
        f"bytes=3-{size + 1000}": (3, size - 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
        "BYTES=1-2": (1, 2),
    }
    for header, (first, last) in cases.items():
        r = await api.client.get(url, headers={**h, "Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.content == data[first : last + 1], header
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert r.headers["content-length"] == str(last - first + 1)
        assert r.headers["x-run-status"] == "queued"

    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        r = await api.client.get(url, headers={**h, "Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{size}"
        body = r.json()
        assert set(body) == {"code", "message", "details"}
        assert body["code"] == "range_not_satisfiable"

    # Malformed, another unit, or several ranges: ignored (RFC 9110), the whole log.
    for header in (
        "bytes=5-2",
        "bytes=abc",
        "items=0-5",
        "bytes=",
        "bytes=-",
        "0-5",
        "bytes=0-1,3-4",
    ):
        r = await api.client.get(url, headers={**h, "Range": header})
        assert r.status_code == 200, header
        assert r.content == data
        assert "content-range" not in r.headers


async def test_raw_log_of_a_run_without_a_log_is_empty(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    api = api_no_workers
    run_id = await queued_run_with_log(api, demo_repo, [])
    h = await api.headers()
    url = f"/api/v1/runs/{run_id}/logs/raw"
    r = await api.client.get(url, headers=h)
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == "0"
    assert r.headers["x-run-status"] == "queued"
    for header in ("bytes=0-", "bytes=-5"):
        r = await api.client.get(url, headers={**h, "Range": header})
        assert r.status_code == 416
        assert r.headers["content-range"] == "bytes */0"


async def test_openapi_documents_both_routes(api_no_workers: Api) -> None:
    spec = (await api_no_workers.client.get("/api/v1/openapi.json")).json()
    stream_op = spec["paths"]["/runs/{run_id}/logs/stream"]["get"]
    assert "text/event-stream" in stream_op["responses"]["200"]["content"]
    assert {"400", "401", "403", "404"} <= set(stream_op["responses"])
    assert "application/json" in stream_op["responses"]["404"]["content"]
    names = {p["name"] for p in stream_op["parameters"]}
    assert {"offset", "Last-Event-ID"} <= names
    raw_op = spec["paths"]["/runs/{run_id}/logs/raw"]["get"]
    assert "text/plain" in raw_op["responses"]["200"]["content"]
    assert {"200", "206", "400", "401", "403", "404", "416"} <= set(raw_op["responses"])
    assert "Range" in {p["name"] for p in raw_op["parameters"]}


# ---- the same on PostgreSQL (distributed mode: lines come from other hosts' workers) -----


@pytest.fixture
async def api_pg_no_workers(tmp_path: Path, pg_url: str) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path / "data",
        database_url=pg_url,
        log_stream_keepalive_seconds=0.2,
        log_stream_max_seconds=30,
    )
    async for value in _api(settings, run_workers=False):
        yield value


@pytest.mark.postgres
async def test_stream_on_postgres(api_pg_no_workers: Api, demo_repo: DemoRepo) -> None:
    await test_stream_waits_for_a_log_then_ends_when_the_run_does(api_pg_no_workers, demo_repo)


@pytest.mark.postgres
async def test_ranges_on_postgres(api_pg_no_workers: Api, demo_repo: DemoRepo) -> None:
    await test_raw_log_ranges(api_pg_no_workers, demo_repo)
