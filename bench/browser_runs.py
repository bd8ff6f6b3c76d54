"""Benchmark of browser runs (the Tester Army dialect): the real app, workers and Chromium.

    .venv/bin/python bench/browser_runs.py [--runs N] [--cancels N] [--webhooks N]
                                           [--workers N] [--out bench/results/browser_runs.json]

Measures (a) submit→completed of a one-step prompt run (`open` the demo shop), split
into queue wait and agent time (Chromium start included), one run at a time; (b) the
throughput of a burst of such runs on the workers; (c) native cancel of a running
browser run → `canceled`; (d) run completed → webhook received by a local receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from run_engine import stats_ms  # bench/ is on sys.path when a benchmark runs
from runplane import __version__
from runplane.api.app import create_app
from runplane.api.demo_site import serve_demo_site
from runplane.config import Settings
from runplane.domain.permissions import Role, Scope
from runplane.services import accounts
from runplane.store.database import unit_of_work
from runplane.store.models import Run

DEFAULT_OUT = Path(__file__).parent / "results" / "browser_runs.json"
TERMINAL = {"completed", "failed", "cancelled"}


class _Receiver:
    """Records when each webhook arrived, by run id."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.arrived[body["id"]] = time.time()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _wait(client: httpx.AsyncClient, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (await client.get(f"/ta/v1/runs/{run_id}", headers=headers)).json()
        if body["status"] in TERMINAL:
            return body
        await asyncio.sleep(0.01)


async def _db_run(app: Any, run_uuid: str) -> Run:
    from sqlalchemy import select

    async with unit_of_work(app.state.runtime.ctx.reads) as session:
        run = await session.scalar(select(Run).where(Run.uuid == run_uuid))
    assert run is not None
    return run


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, serve_demo_site() as site:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            workers=args.workers,
            rate_limit_enabled=False,
            usage_runs_per_day=0,
            webhook_allow_private=True,
            webhook_poll_seconds=0.05,
            browser_network="any",  # the shop is on 127.0.0.1
        )
        app = create_app(settings)
        receiver = _Receiver()
        async with app.router.lifespan_context(app):
            ctx = app.state.runtime.ctx
            await accounts.create_user(ctx, "bench@runplane.local", "password123", Role.ADMIN)
            key = await accounts.issue_for_email(
                ctx,
                "bench@runplane.local",
                "b",
                [Scope.RUNS_READ, Scope.RUNS_WRITE],
                1,
                prefix=accounts.TESTER_ARMY_PREFIX,
            )
            native = await accounts.issue_for_email(
                ctx, "bench@runplane.local", "n", [Scope.RUNS_READ, Scope.RUNS_WRITE], 1
            )
            headers = {"Authorization": f"Bearer {key.token}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

                async def submit(prompt: str, **extra: Any) -> str:
                    r = await client.post(
                        "/ta/v1/runs", headers=headers, json={"prompt": prompt, **extra}
                    )
                    assert r.status_code == 202, r.text
                    return str(r.json()["id"])

                # (a) one at a time
                total, queue, agent = [], [], []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    run_id = await submit(f"open {site}/")
                    body = await _wait(client, headers, run_id)
                    total.append(time.perf_counter() - t0)
                    assert body["output"]["result"] == "PASS", body
                    row = await _db_run(app, run_id)
                    assert row.started_at and row.completed_at
                    queue.append((row.started_at - row.created_at).total_seconds())
                    agent.append((row.completed_at - row.started_at).total_seconds())
                # (b) a burst
                t0 = time.perf_counter()
                burst = [await submit(f"open {site}/") for _ in range(args.runs)]
                await asyncio.gather(*(_wait(client, headers, r) for r in burst))
                burst_seconds = time.perf_counter() - t0
                # (c) native cancel of a running run
                cancels = []
                for _ in range(args.cancels):
                    run_id = await submit(f"open {site}/\nwait 30 s")
                    row = await _db_run(app, run_id)
                    while (await _db_run(app, run_id)).status != "running":
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(1.5)  # let Chromium start
                    t0 = time.perf_counter()
                    r = await client.post(
                        f"/api/v1/runs/{row.id}/cancel",
                        headers={"Authorization": f"Bearer {native.token}"},
                    )
                    assert r.status_code == 202, r.text
                    await _wait(client, headers, run_id)
                    cancels.append(time.perf_counter() - t0)
                # (d) webhook latency
                hooks = []
                for _ in range(args.webhooks):
                    run_id = await submit(f"open {site}/", webhookUrl=receiver.url)
                    await _wait(client, headers, run_id)
                    while run_id not in receiver.arrived:
                        await asyncio.sleep(0.01)
                    row = await _db_run(app, run_id)
                    assert row.completed_at
                    hooks.append(receiver.arrived[run_id] - row.completed_at.timestamp())
        receiver.close()
    return {
        "benchmark": "browser_runs",
        "runplane": __version__,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "workers": args.workers,
        "prompt_run_submit_to_completed_ms": stats_ms(total),
        "prompt_run_queue_wait_ms": stats_ms(queue),
        "prompt_run_agent_ms": stats_ms(agent),
        "burst": {
            "runs": args.runs,
            "seconds": round(burst_seconds, 2),
            "runs_per_second": round(args.runs / burst_seconds, 2),
        },
        "cancel_running_to_cancelled_ms": stats_ms(cancels),
        "completed_to_webhook_received_ms": stats_ms(hooks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cancels", type=int, default=5)
    parser.add_argument("--webhooks", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    for key, value in result.items():
        if key.endswith("_ms"):
            print(f"{key:40} p50 {value['p50']:>9} ms  p99 {value['p99']:>9} ms  (n={value['n']})")
    burst = result["burst"]
    print(
        f"{'burst of ' + str(burst['runs']) + ' runs':40} {burst['seconds']} s, "
        f"{burst['runs_per_second']} runs/s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
