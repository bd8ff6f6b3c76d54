"""Webhook deliveries against real SQLite files and a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from runplane import __version__
from runplane.domain.errors import InvalidInput
from runplane.domain.status import RunStatus
from runplane.runtime import Runtime
from runplane.services import webhooks
from runplane.services.context import Context
from runplane.services.webhooks import (
    WebhookDeliverer,
    check_webhook_url,
    sign,
    verify_signature,
    webhook_signing_key,
)
from runplane.store import runs as run_store
from runplane.store import webhooks as store
from runplane.store.database import unit_of_work
from runplane.store.models import Run, WebhookDelivery, utcnow
from runplane.store.runs import EventSpec
from tests.conftest import eventually, make_settings

# ---- the receiver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTs and answers as told."""

    status: int = 200
    #: Seconds to wait before answering (interrupted when the receiver stops).
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            at=time.monotonic(),
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                        )
                    )
                    status, delay = receiver.status, receiver.delay
                if delay:
                    receiver._stopping.wait(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


# ---- runtimes, deliverers, runs --------------------------------------------------------

OpenRuntime = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def open_runtime(tmp_path: Path) -> AsyncIterator[OpenRuntime]:
    """Opens Runtimes on one data dir (so several play several processes); closes them all."""
    opened: list[Runtime] = []

    async def open_(**overrides: Any) -> Runtime:
        values: dict[str, Any] = {
            "webhook_allow_private": True,
            "webhook_backoff_seconds": 0.05,
            "webhook_poll_seconds": 0.02,
            **overrides,
        }
        rt = await Runtime.open(make_settings(tmp_path / "data", **values), run_workers=False)
        opened.append(rt)
        return rt

    try:
        yield open_
    finally:
        for rt in reversed(opened):
            await rt.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides choosing the database: claims must be exclusive on both."""
    if request.param == "postgres":
        return {"database_url": request.getfixturevalue("pg_url")}
    return {}


MakeDeliverer = Callable[[Context], WebhookDeliverer]


def renderer(ctx: Context) -> Callable[[int], Awaitable[dict[str, Any] | None]]:
    async def render(run_id: int) -> dict[str, Any] | None:
        async with unit_of_work(ctx.reads) as session:
            run = await run_store.get_run(session, run_id)
        if run is None:
            return None
        return {"id": run.uuid, "runId": run.id, "status": run.status, "note": "héllo"}

    return render


@pytest.fixture
async def make_deliverer() -> AsyncIterator[MakeDeliverer]:
    made: list[WebhookDeliverer] = []

    def make(ctx: Context) -> WebhookDeliverer:
        deliverer = WebhookDeliverer(ctx, renderer(ctx))
        made.append(deliverer)
        return deliverer

    try:
        yield make
    finally:
        for deliverer in made:
            await deliverer.aclose()


async def new_run(ctx: Context, url: str, *, finish: bool = True) -> int:
    async with unit_of_work(ctx.sessions) as session:
        run = Run(repository="web/x", commit_sha="", platform="web")
        await run_store.insert_run(session, run, EventSpec("queued"))
        await store.create_delivery(session, run.id, url)
        run_id = run.id
    async with unit_of_work(ctx.sessions) as session:
        started = await run_store.transition(
            session, run_id, RunStatus.RUNNING, EventSpec("started"), expected={RunStatus.QUEUED}
        )
        assert started is not None
    if finish:
        await finish_run(ctx, run_id)
    return run_id


async def finish_run(ctx: Context, run_id: int) -> None:
    async with unit_of_work(ctx.sessions) as session:
        done = await run_store.transition(
            session, run_id, RunStatus.PASSED, EventSpec("done"), expected={RunStatus.RUNNING}
        )
        assert done is not None


async def delivery_of(ctx: Context, run_id: int) -> WebhookDelivery:
    async with unit_of_work(ctx.reads) as session:
        found = (await store.deliveries_for_runs(session, [run_id])).get(run_id)
    assert found is not None
    return found


async def wait_for_state(ctx: Context, run_id: int, state: str, timeout: float = 10) -> None:
    async def check() -> bool:
        return (await delivery_of(ctx, run_id)).state == state

    await eventually(check, timeout)


# ---- delivery --------------------------------------------------------------------------


async def test_delivers_the_signed_run_object(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    rt = await open_runtime()
    run_id = await new_run(rt.ctx, receiver.url)
    deliverer = make_deliverer(rt.ctx)

    assert await deliverer.deliver_due() == 1

    [request] = receiver.received()
    row = await delivery_of(rt.ctx, run_id)
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"runplane-webhooks/{__version__}"
    assert request.headers["x-runplane-event"] == "run.completed"
    assert request.headers["x-runplane-delivery"] == f"{row.id}.0"
    assert json.loads(request.body) == await renderer(rt.ctx)(run_id)
    assert json.loads(request.body)["status"] == "passed"

    key = webhook_signing_key(rt.ctx)
    signature = request.headers["x-runplane-signature"]
    assert verify_signature(key, signature, request.body)
    assert not verify_signature(b"wrong key", signature, request.body)
    assert not verify_signature(key, signature, request.body.replace(b"passed", b"failed"))
    t = int(signature.split(",")[0].removeprefix("t="))
    assert abs(t - time.time()) < 5
    assert not verify_signature(key, signature, request.body, now=t + 301)
    assert verify_signature(key, signature, request.body, now=t + 299)

    assert row.state == "delivered"
    assert row.attempts == 1
    assert row.last_status_code == 200
    assert row.last_error is None
    assert row.delivered_at is not None
    assert row.claimed_until is None
    # Delivered once: nothing is due any more.
    assert await deliverer.deliver_due() == 0
    assert len(receiver.received()) == 1


async def test_backoff_is_1_2_4_seconds_then_failed(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    """The real defaults: 3 retries after 1, 2 and 4 s, then the delivery gives up."""
    receiver.status = 500
    rt = await open_runtime(webhook_backoff_seconds=1.0)
    assert rt.settings.webhook_retries == 3
    run_id = await new_run(rt.ctx, receiver.url)
    deliverer = make_deliverer(rt.ctx)
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    try:
        await wait_for_state(rt.ctx, run_id, "failed", timeout=15)
        await asyncio.sleep(0.3)  # no fifth attempt follows
    finally:
        stop.set()
        await task

    times = [r.at for r in receiver.received()]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, expected in zip(gaps, [1.0, 2.0, 4.0], strict=True):
        assert expected - 0.05 <= gap <= expected + 0.5, gaps
    row = await delivery_of(rt.ctx, run_id)
    assert row.attempts == 4
    assert row.last_status_code == 500
    assert row.last_error == "HTTP 500"
    assert row.delivered_at is None
    assert row.claimed_until is None


async def test_retry_after_a_failure_can_succeed(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    receiver.status = 503
    rt = await open_runtime(webhook_backoff_seconds=0.3)
    run_id = await new_run(rt.ctx, receiver.url)
    deliverer = make_deliverer(rt.ctx)

    assert await deliverer.deliver_due() == 1
    row = await delivery_of(rt.ctx, run_id)
    assert (row.state, row.attempts, row.last_status_code) == ("pending", 1, 503)
    assert row.next_attempt_at > utcnow()
    # Not due before the backoff has passed.
    assert await deliverer.deliver_due() == 0

    receiver.status = 204
    await asyncio.sleep(0.35)
    assert await deliverer.deliver_due() == 1
    row = await delivery_of(rt.ctx, run_id)
    assert (row.state, row.attempts, row.last_status_code) == ("delivered", 2, 204)
    assert row.last_error is None
    [first, second] = receiver.received()
    # Each attempt is signed afresh; the delivery id is the same (receivers dedupe on it).
    assert first.headers["x-runplane-delivery"] == second.headers["x-runplane-delivery"]


async def test_not_sent_while_the_run_is_running(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    rt = await open_runtime()
    run_id = await new_run(rt.ctx, receiver.url, finish=False)
    deliverer = make_deliverer(rt.ctx)

    assert await deliverer.deliver_due() == 0
    assert receiver.received() == []
    assert (await delivery_of(rt.ctx, run_id)).state == "pending"

    await finish_run(rt.ctx, run_id)
    assert await deliverer.deliver_due() == 1
    assert len(receiver.received()) == 1


async def test_timeout_is_a_failed_attempt(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    receiver.delay = 5.0
    rt = await open_runtime(webhook_timeout_seconds=0.3, webhook_retries=1)
    run_id = await new_run(rt.ctx, receiver.url)
    deliverer = make_deliverer(rt.ctx)

    started = time.monotonic()
    assert await deliverer.deliver_due() == 1
    assert time.monotonic() - started < 2
    row = await delivery_of(rt.ctx, run_id)
    assert (row.state, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error is not None and "timed out" in row.last_error

    await asyncio.sleep(0.1)
    assert await deliverer.deliver_due() == 1
    row = await delivery_of(rt.ctx, run_id)
    assert (row.state, row.attempts) == ("failed", 2)
    assert len(receiver.received()) == 2


async def test_two_deliverers_on_one_database_deliver_exactly_once(
    open_runtime: OpenRuntime,
    make_deliverer: MakeDeliverer,
    receiver: Receiver,
    database: dict[str, Any],
) -> None:
    # Two Runtimes on one data dir: two engines, as two server processes would have.
    rt1 = await open_runtime(**database)
    rt2 = await open_runtime(**database)
    run_ids = [await new_run(rt1.ctx, receiver.url) for _ in range(8)]
    d1, d2 = make_deliverer(rt1.ctx), make_deliverer(rt2.ctx)

    made = 0
    for _ in range(5):
        a, b = await asyncio.gather(d1.deliver_due(), d2.deliver_due())
        made += a + b
    assert made == len(run_ids)

    ids = [r.headers["x-runplane-delivery"] for r in receiver.received()]
    assert len(ids) == len(run_ids)
    assert len(set(ids)) == len(run_ids)
    for run_id in run_ids:
        row = await delivery_of(rt2.ctx, run_id)
        assert (row.state, row.attempts) == ("delivered", 1)


async def test_two_run_loops_deliver_exactly_once(
    open_runtime: OpenRuntime,
    make_deliverer: MakeDeliverer,
    receiver: Receiver,
    database: dict[str, Any],
) -> None:
    rt1 = await open_runtime(**database)
    rt2 = await open_runtime(**database)
    stop = asyncio.Event()
    loops = [asyncio.create_task(make_deliverer(rt.ctx).run(stop)) for rt in (rt1, rt2, rt1, rt2)]
    try:
        run_ids = [await new_run(rt1.ctx, receiver.url) for _ in range(6)]
        for run_id in run_ids:
            await wait_for_state(rt1.ctx, run_id, "delivered")
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    ids = [r.headers["x-runplane-delivery"] for r in receiver.received()]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 6


async def test_a_pending_delivery_survives_a_restart(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver, tmp_path: Path
) -> None:
    first = await Runtime.open(make_settings(tmp_path / "data"), run_workers=False)
    try:
        run_id = await new_run(first.ctx, receiver.url)
    finally:
        await first.close()

    second = await open_runtime()
    assert await make_deliverer(second.ctx).deliver_due() == 1
    assert (await delivery_of(second.ctx, run_id)).state == "delivered"
    assert len(receiver.received()) == 1


async def test_a_claim_of_a_dead_deliverer_expires(
    open_runtime: OpenRuntime,
    make_deliverer: MakeDeliverer,
    receiver: Receiver,
    database: dict[str, Any],
) -> None:
    rt = await open_runtime(**database)
    run_id = await new_run(rt.ctx, receiver.url)
    row = await delivery_of(rt.ctx, run_id)
    now = utcnow()
    async with unit_of_work(rt.ctx.sessions) as session:
        assert await store.claim(session, row.id, now, now + timedelta(seconds=0.4))
        # A claim is exclusive while it lasts.
        assert not await store.claim(session, row.id, now, now + timedelta(seconds=60))
    deliverer = make_deliverer(rt.ctx)

    assert await deliverer.deliver_due() == 0
    await asyncio.sleep(0.5)
    assert await deliverer.deliver_due() == 1
    assert (await delivery_of(rt.ctx, run_id)).state == "delivered"
    # The dead deliverer's late outcome no longer matches the claim: dropped.
    async with unit_of_work(rt.ctx.sessions) as session:
        assert not await store.record_attempt(
            session,
            row.id,
            now + timedelta(seconds=0.4),
            state="failed",
            status_code=500,
            error="late",
        )
    assert (await delivery_of(rt.ctx, run_id)).state == "delivered"


async def test_stopping_the_loop_releases_an_unanswered_claim(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    receiver.delay = 5.0
    rt = await open_runtime()
    run_id = await new_run(rt.ctx, receiver.url)
    stop = asyncio.Event()
    task = asyncio.create_task(make_deliverer(rt.ctx).run(stop))

    async def sent() -> bool:
        return len(receiver.received()) == 1

    await eventually(sent, 5)
    stopped_at = time.monotonic()
    stop.set()
    await task
    assert time.monotonic() - stopped_at < 1
    row = await delivery_of(rt.ctx, run_id)
    # Given back uncounted: the next deliverer (after a restart) sends it again.
    assert (row.state, row.attempts, row.claimed_until) == ("pending", 0, None)


async def test_a_forbidden_address_fails_at_once(
    open_runtime: OpenRuntime, make_deliverer: MakeDeliverer, receiver: Receiver
) -> None:
    """The URL was fine when the run was created; now it is not (e.g. DNS changed)."""
    rt = await open_runtime(webhook_allow_private=False)
    run_id = await new_run(rt.ctx, receiver.url)

    assert await make_deliverer(rt.ctx).deliver_due() == 1
    row = await delivery_of(rt.ctx, run_id)
    assert (row.state, row.attempts, row.last_status_code) == ("failed", 1, None)
    assert row.last_error is not None
    assert "forbidden" in row.last_error and "loopback" in row.last_error
    assert receiver.received() == []


async def test_a_vanished_run_fails_without_a_request(
    open_runtime: OpenRuntime, receiver: Receiver
) -> None:
    rt = await open_runtime()
    run_id = await new_run(rt.ctx, receiver.url)

    async def gone(_run_id: int) -> dict[str, Any] | None:
        return None

    deliverer = WebhookDeliverer(rt.ctx, gone)
    try:
        assert await deliverer.deliver_due() == 1
    finally:
        await deliverer.aclose()
    row = await delivery_of(rt.ctx, run_id)
    assert row.state == "failed"
    assert receiver.received() == []


async def test_a_restarted_run_is_delivered_again(
    open_runtime: OpenRuntime,
    make_deliverer: MakeDeliverer,
    receiver: Receiver,
) -> None:
    rt = await open_runtime()
    run_id = await new_run(rt.ctx, receiver.url)
    deliverer = make_deliverer(rt.ctx)
    assert await deliverer.deliver_due() == 1

    async with unit_of_work(rt.ctx.sessions) as session:
        requeued = await run_store.transition(
            session, run_id, RunStatus.QUEUED, EventSpec("restart"), expected={RunStatus.PASSED}
        )
        assert requeued is not None
        await store.reset_for_run(session, run_id)
    row = await delivery_of(rt.ctx, run_id)
    assert (row.state, row.attempts, row.delivered_at, row.last_status_code) == (
        "pending",
        0,
        None,
        None,
    )
    assert await deliverer.deliver_due() == 0  # queued again: not yet

    async with unit_of_work(rt.ctx.sessions) as session:
        assert await run_store.transition(
            session, run_id, RunStatus.RUNNING, EventSpec("started"), expected={RunStatus.QUEUED}
        )
    await finish_run(rt.ctx, run_id)
    assert await deliverer.deliver_due() == 1
    first, second = receiver.received()
    # A new outcome under a new delivery key: receivers that deduplicate keep both.
    assert first.headers["x-runplane-delivery"] == f"{row.id}.0"
    assert second.headers["x-runplane-delivery"] == f"{row.id}.1"


# ---- signing ---------------------------------------------------------------------------


async def test_signing_key(open_runtime: OpenRuntime) -> None:
    rt = await open_runtime()
    derived = hmac.new(rt.ctx.secret_key, b"runplane-webhook-signing", hashlib.sha256)
    assert webhook_signing_key(rt.ctx) == derived.hexdigest().encode()
    assert webhook_signing_key(rt.ctx) != rt.ctx.secret_key

    configured = await open_runtime(webhook_secret="whsec-test")
    assert webhook_signing_key(configured.ctx) == b"whsec-test"


def test_sign_and_verify() -> None:
    key, body = b"k", b'{"a":1}'
    header = sign(key, 1_700_000_000, body)
    expected = hmac.new(key, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature(key, header, body, now=1_700_000_100)
    assert not verify_signature(key, header, body, now=1_700_000_301)
    assert not verify_signature(key, header, body, now=1_699_999_699)
    assert verify_signature(key, header, body, tolerance_seconds=10**9)
    # The timestamp is signed: changing it breaks the signature.
    assert not verify_signature(key, header.replace("t=1700000000", "t=1700000001"), body)
    # A rotated key: any v1 may match.
    assert verify_signature(key, f"{header},v1={'0' * 64}", body, now=1_700_000_000)
    for broken in ("", "garbage", "t=abc,v1=00", f"v1={expected}", "t=1700000000"):
        assert not verify_signature(key, broken, body, now=1_700_000_000)


# ---- URL safety ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "http or https"),
        ("ftp://93.184.216.34/x", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("http:///hook", "host"),
        ("https://user:pass@93.184.216.34/hook", "credentials"),
        ("https://token@93.184.216.34/hook", "credentials"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.20/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://100.64.0.1/hook", "not a public address"),
        ("http://localhost:8000/hook", "this machine"),
        ("http://api.localhost/hook", "this machine"),
        ("https://93.184.216.34/" + "x" * 2000, "2000 characters"),
    ],
)
async def test_check_webhook_url_rejects(url: str, why: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await check_webhook_url(url, allow_private=False)
    [message] = caught.value.details["fields"]["webhookUrl"]
    assert why in message


@pytest.mark.parametrize(
    "url",
    ["https://93.184.216.34/hook", "http://93.184.216.34:8080/a?b=1", "https://[2606:4700::1]/"],
)
async def test_check_webhook_url_accepts_public_addresses(url: str) -> None:
    # Literal addresses only: no DNS lookup and no request is made.
    assert await check_webhook_url(f"  {url} ", allow_private=False) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://10.0.0.1/", "http://[::1]/", "http://localhost/"]
)
async def test_check_webhook_url_allow_private(url: str) -> None:
    assert await check_webhook_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url", ["file:///x", "https://u:p@127.0.0.1/", "ftp://127.0.0.1/", "http:///x"]
)
async def test_allow_private_still_checks_the_syntax(url: str) -> None:
    with pytest.raises(InvalidInput):
        await check_webhook_url(url, allow_private=True)


def test_a_checked_address_is_pinned() -> None:
    """The connection goes to the address that was checked, not to a second DNS answer."""
    target = webhooks._pinned(
        httpx.URL("https://hooks.example.com:8443/in?x=1"),
        ipaddress.ip_address("93.184.216.34"),
    )
    assert str(target.url) == "https://93.184.216.34:8443/in?x=1"
    assert target.headers == {"Host": "hooks.example.com:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}
    plain = webhooks._pinned(
        httpx.URL("http://hooks.example.com/in"), ipaddress.ip_address("2606:4700::1")
    )
    assert str(plain.url) == "http://[2606:4700::1]/in"
    assert plain.headers == {"Host": "hooks.example.com"}
    assert plain.extensions == {}
