"""Benchmark of distributed mode: `runplane worker` processes on PostgreSQL vs embedded mode.

    .venv/bin/python bench/distributed.py [--runs N] [--cancels N] [--concurrency N]
                                          [--out bench/results/distributed.json]

The same three figures as bench/run_engine.py, in three set-ups, one after another in
one process:

* ``distributed, 1 worker`` and ``distributed, 2 workers``: a fresh PostgreSQL database
  (``rp_bench_<random>``, created on ``--pg``, by default
  ``postgresql://postgres@127.0.0.1:5432/test``, and dropped at the end). The API runs in
  this process (``create_app(..., run_workers=False)``: it only defers procrastinate
  jobs) and talks over ASGI with httpx as in run_engine.py; the runs are executed by
  ``runplane worker --concurrency N`` subprocesses (N = ``--concurrency``, default 2),
  first one, then a second one is started beside it (same database, so the second set
  of figures is measured on a database holding the first set's runs). The workers run
  with the production defaults (lease 30 s, cancel poll 1 s, grace period 3 s).
* ``embedded (SQLite)``: run_engine.py's set-up, the app with its 2 in-process workers
  on a SQLite file (``--concurrency`` workers too), for comparison.

Rate limiting is off everywhere (a burst would be answered with 429s).

Figures (p50 / p99, linear interpolation; mean, min, max in the JSON):

**submit → running** (``a.submit_to_running_ms``): trivial (`true`) runs submitted one at
a time on idle workers, each waited for before the next; ``started_at - created_at`` from
the database. In distributed mode ``created_at`` is written by the API process and
``started_at`` by the worker process, both with the clock of this host. It covers the
commit, the procrastinate defer (an INSERT plus NOTIFY), the worker's fetch of the job
and the run's claim; in embedded mode it is the in-process wake-up of a worker.

**cancel → terminal** (``b.cancel_to_canceled_ms``): a `sleep 60` run, once its test step
runs, is canceled with ``POST /api/v1/runs/{id}/cancel``; wall time from sending the
request until the database says ``canceled``. In distributed mode the signal travels
by ``NOTIFY runplane_cancel`` (and procrastinate's abort) to the worker process, which
kills the tree and writes the final status. ``b.canceling_to_canceled_db_ms`` is the same
from the database alone (``canceling`` event → ``completed_at``). The API's cancel
endpoint waits up to ``cancel_wait_seconds`` for the run to stop, so the client figure
is one HTTP round trip that ends when the run has ended.

**throughput** (``c.runs_per_second``): ``--runs`` trivial runs submitted back to back,
then runs per second of wall time until all are terminal; ``c.queue_wait_ms`` is
``started_at - created_at`` inside that burst. Every run should end ``passed``
(``c.statuses``). With 1 worker of concurrency 2 and embedded mode's 2 workers the
parallelism is the same, so the difference is the cost of procrastinate and of a
separate process; the 2-worker line has twice the slots on the same 2 cores.

All processes (API, workers, PostgreSQL, git, the test commands) share the machine:
compare runs of the script on one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg

from run_engine import (
    Bench,
    cancel_to_terminal,
    make_repository,
    report,  # bench/ is on sys.path when a benchmark runs
    started,
    submit_to_running,
    throughput,
)
from runplane import __version__
from runplane.config import Settings

DEFAULT_OUT = Path(__file__).parent / "results" / "distributed.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "bench-distributed-secret-0123456789abcdef"


# ---- set-up ---------------------------------------------------------------------------


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """A new PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"rp_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Workers:
    """``runplane worker`` subprocesses on one database."""

    def __init__(self, database_url: str, root: Path, concurrency: int) -> None:
        self.database_url = database_url
        self.root = root
        self.concurrency = concurrency
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes], Path]] = []

    def start(self) -> None:
        name = f"worker{len(self.procs) + 1}"
        data = self.root / name
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "RUNPLANE_DATABASE_URL": self.database_url,
            "RUNPLANE_SECRET_KEY": SECRET,
            "RUNPLANE_DATA_DIR": str(data),
        }
        log_path = self.root / f"{name}.log"
        log = log_path.open("wb")
        command = [sys.executable, "-m", "runplane.cli.main", "worker"]
        command += ["--concurrency", str(self.concurrency), "--drain-timeout", "5"]
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((proc, log, log_path))

    async def wait_registered(self, timeout: float = 60) -> None:
        """Until every started process has a procrastinate worker that beats."""
        from runplane.dispatch.distributed import libpq_url

        deadline = time.monotonic() + timeout
        while True:
            with psycopg.connect(libpq_url(self.database_url)) as conn:
                row = conn.execute(
                    "SELECT CASE WHEN to_regclass('procrastinate_workers') IS NULL THEN 0"
                    " ELSE (SELECT count(*) FROM procrastinate_workers) END"
                ).fetchone()
            if row is not None and int(row[0]) >= len(self.procs):
                return
            for proc, _, log_path in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker died:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, log, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


# ---- the measurements -----------------------------------------------------------------


async def measure(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    a = await submit_to_running(bench, args.runs)
    b = await cancel_to_terminal(bench, args.cancels)
    c = await throughput(bench, args.runs)
    return {"a": a, "b": b, "c": c, "seconds": round(time.perf_counter() - t0, 1)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    started_at = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="runplane-bench-dist-") as tmp:
        root = Path(tmp)
        sha = make_repository(root / "repo")
        with fresh_database(args.pg) as url:
            settings = Settings(
                data_dir=root / "api",
                database_url=url,
                secret_key=SECRET,
                workers=0,
                rate_limit_enabled=False,
            )
            async with started(settings, root / "repo", sha, run_workers=False) as bench:
                workers = Workers(url, root, args.concurrency)
                try:
                    for count in (1, 2):
                        workers.start()
                        await workers.wait_registered()
                        label = f"distributed, {count} worker{'s' if count > 1 else ''}"
                        print(f"measuring {label} ...", file=sys.stderr)
                        modes[label] = await measure(bench, args)
                finally:
                    workers.stop()
        embedded = Settings(
            data_dir=root / "embedded",
            workers=args.concurrency,
            rate_limit_enabled=False,
        )
        print("measuring embedded (SQLite) ...", file=sys.stderr)
        async with started(embedded, root / "repo", sha) as bench:
            modes["embedded (SQLite)"] = await measure(bench, args)
    return {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "runplane": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "total_seconds": round(time.perf_counter() - started_at, 1),
        },
        "settings": {
            "runs": args.runs,
            "cancels": args.cancels,
            "concurrency_per_worker": args.concurrency,
            "embedded_workers": args.concurrency,
        },
        "modes": modes,
    }


# ---- main ---------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    head = ("mode", "submit→running p50/p99", "cancel→canceled p50/p99", "throughput")
    rows = [head]
    for label, m in result["modes"].items():
        a, b, c = m["a"]["submit_to_running_ms"], m["b"]["cancel_to_canceled_ms"], m["c"]
        rows.append(
            (
                label,
                f"{a['p50']:.1f} / {a['p99']:.1f} ms",
                f"{b['p50']:.1f} / {b['p99']:.1f} ms",
                f"{c['runs_per_second']:.2f} runs/s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
    s = result["settings"]
    print(
        f"(n = {s['runs']} runs for submit→running and throughput, {s['cancels']} cancels;"
        f" concurrency {s['concurrency_per_worker']} per worker)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=60, help="runs for submit→running and burst")
    parser.add_argument("--cancels", type=int, default=10, help="runs canceled per mode")
    parser.add_argument("--concurrency", type=int, default=2, help="slots per worker")
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin DSN of the PostgreSQL server")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = parser.parse_args(argv)
    if min(args.runs, args.cancels, args.concurrency) < 1:
        parser.error("--runs, --cancels and --concurrency must be at least 1")
    return report(main_async(args), print_table, args.out)


if __name__ == "__main__":
    sys.exit(main())
