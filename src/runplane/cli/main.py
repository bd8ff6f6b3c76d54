"""``runplane``: serve, and operator commands that work on the data dir (also while serving)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from runplane.cli import commands_login, commands_runs, commands_samples
from runplane.config import Settings
from runplane.domain.errors import RunplaneError
from runplane.domain.network import NetworkPolicy
from runplane.domain.permissions import Role, Scope
from runplane.logging_setup import configure_logging

if TYPE_CHECKING:
    from runplane.services import demo
    from runplane.services.context import Context

# The server side (runtime, services, uvicorn) is imported inside the commands that
# need it: the client commands start several times faster without it.

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
users_app = typer.Typer(no_args_is_help=True, help="Manage users.")
tokens_app = typer.Typer(no_args_is_help=True, help="Issue API tokens.")
projects_app = typer.Typer(no_args_is_help=True, help="Manage projects.")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(projects_app, name="projects")
# Remote clients of a server's /api/v1 (over HTTP; they never open the database).
app.command()(commands_login.login)
app.add_typer(commands_runs.runs_app, name="runs")
app.add_typer(commands_samples.samples_app, name="samples")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="RUNPLANE_DATA_DIR",
        help="Data directory [env: RUNPLANE_DATA_DIR; default ./.runplane].",
    ),
]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    settings = Settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    return settings.model_copy(update=updates)


def _run(settings: Settings, action: Callable[[Context], Awaitable[T]]) -> T:
    """Run one operator action against the data dir; domain errors become one-line exits."""

    from runplane.runtime import Runtime

    async def main() -> T:
        runtime = await Runtime.open(settings, run_workers=False)
        try:
            return await action(runtime.ctx)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except RunplaneError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    workers: Annotated[
        int | None,
        typer.Option(envvar="RUNPLANE_WORKERS", help="Parallel runs [env: RUNPLANE_WORKERS]."),
    ] = None,
    with_demo: Annotated[
        bool, typer.Option("--demo", help="Create a demo project and print an admin token.")
    ] = False,
) -> None:
    """Start the server: API, in-process workers and the lease reaper."""
    import uvicorn

    from runplane.api.app import create_app
    from runplane.services import demo

    settings = _settings(data_dir, workers=workers)
    configure_logging(settings.log_format, logging.INFO)
    if with_demo:
        public = f"http://{host}:{port}"
        # The demo shop is on this machine: browser runs may load local pages here.
        settings = settings.model_copy(
            update={"demo_site": True, "public_url": public, "browser_network": NetworkPolicy.ANY}
        )
        info = _run(settings, lambda ctx: demo.ensure_demo(ctx, f"{public}/demo-site/"))
        _print_demo(info, host, port)
    # log_config=None: uvicorn's own loggers propagate to the handler configured above
    # (JSON lines too) instead of getting handlers and formats of their own.
    # An open log stream would hold a shutdown until its time limit: give streams (and
    # other requests) a few seconds, then close them; clients resume with Last-Event-ID.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=256, envvar="RUNPLANE_WORKERS", help="Parallel runs [env: RUNPLANE_WORKERS]."
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Comma-separated platforms this host runs (linux,gpu); default: all."),
    ] = None,
    data_dir: DataDir = None,
    drain_timeout: Annotated[
        float,
        typer.Option(min=0, help="On SIGTERM, seconds running runs may take to finish."),
    ] = 30.0,
) -> None:
    """A standalone worker (PostgreSQL only): executes runs deferred by any API process."""
    from runplane.dispatch.distributed import queues_for_labels
    from runplane.store.database import is_sqlite_url

    settings = _settings(data_dir, workers=concurrency)
    if is_sqlite_url(settings.resolved_database_url):
        typer.echo(
            "error: runplane worker needs RUNPLANE_DATABASE_URL=postgresql+psycopg://...; "
            "with the embedded SQLite database, `runplane serve` runs the workers",
            err=True,
        )
        raise typer.Exit(2)
    if settings.workers < 1:
        typer.echo("error: a worker needs --concurrency of at least 1", err=True)
        raise typer.Exit(2)
    chosen = [label.strip() for label in (labels or "").split(",") if label.strip()]
    queues = queues_for_labels(chosen) if chosen else None
    configure_logging(settings.log_format, logging.INFO)
    asyncio.run(_work(settings, queues, drain_timeout))


async def _work(settings: Settings, queues: list[str] | None, drain_seconds: float) -> None:
    import signal

    from runplane.dispatch.distributed import DistributedDispatcher
    from runplane.runtime import Runtime

    runtime = await Runtime.open(
        settings, run_workers=True, worker_queues=queues, drain_seconds=drain_seconds
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    assert isinstance(runtime.dispatcher, DistributedDispatcher)
    worker_task = runtime.dispatcher.worker_task
    waiter = asyncio.create_task(stop.wait())
    watched: set[asyncio.Future[Any]] = {waiter}
    if worker_task is not None:
        watched.add(worker_task)
    logging.getLogger(__name__).info(
        "worker started: %d slot(s), queues %s", settings.workers, queues or "all"
    )
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    # Stop taking jobs, let running runs finish up to the drain timeout, then stop them.
    await runtime.close()
    if not stop.is_set():
        raise SystemExit("error: the procrastinate worker stopped unexpectedly")


def _print_demo(info: demo.Demo, host: str, port: int) -> None:
    from runplane.services import demo

    base = f"http://{host}:{port}/api/v1"
    auth = f'-H "Authorization: Bearer {info.token}"'
    lines = [
        "",
        "runplane demo",
        f"  demo repository : {info.repo_path} (project {demo.DEMO_REPOSITORY})",
        f"  admin user      : {info.admin_email}"
        + (
            f" / password {info.admin_password}"
            if info.admin_password
            else " (existing; its password was printed at its first start)"
        ),
        f"  admin token     : {info.token}",
        f"  dashboard       : http://{host}:{port}/ (sign in as the admin user above)",
        f"  API docs        : {base}/docs",
        "",
        "  # queue a run of the commit whose tests fail, then watch it:",
        f"  curl -s -X POST {base}/runs {auth} -H 'Content-Type: application/json' "
        f'-d \'{{"repository": "{demo.DEMO_REPOSITORY}", "commit_sha": '
        f'"{info.failing_sha}", "platform": "linux"}}\'',
        f"  curl -s {base}/runs/1 {auth}",
        "",
        f"  (commit {info.passing_sha} passes; logs: {base}/runs/1/logs,"
        f" results: {base}/runs/1/samples)",
        "",
        "  # regression tests on sample files (one baseline is stale: see its diff, approve it):",
        f"  curl -s -X POST {base}/runs {auth} -H 'Content-Type: application/json' "
        f'-d \'{{"repository": "{demo.REGRESSION_REPOSITORY}", "commit_sha": '
        f'"{info.regression_sha}", "platform": "linux"}}\'',
        "",
        "  # browser runs through the Tester Army dialect (a real headless Chromium on the",
        f"  # demo shop at http://{host}:{port}/demo-site/); ?wait= answers with the verdict:",
        f"  curl -s -X POST 'http://{host}:{port}/ta/v1/runs?wait=60' "
        f'-H "Authorization: Bearer {info.ta_key}" '
        "-H 'Content-Type: application/json' "
        f'-d \'{{"prompt": "open http://{host}:{port}/demo-site/\\nclick link \\"Sign in\\"'
        '\\nexpect title \\"Sign in\\""}\'',
        f"  curl -s -X POST http://{host}:{port}/ta/v1/tests/{info.web_test_id}/runs "
        f'-H "Authorization: Bearer {info.ta_key}"',
        f"  (then GET http://{host}:{port}/ta/v1/runs; docs: http://{host}:{port}/ta/docs)",
        "",
    ]
    print("\n".join(lines), flush=True)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="Password (8..128 characters).")],
    role: Annotated[Role, typer.Option(help="admin, contributor, tester or user.")],
    data_dir: DataDir = None,
) -> None:
    """Create a user."""
    from runplane.services import accounts

    if not 8 <= len(password) <= 128:
        typer.echo("error: password must be 8..128 characters", err=True)
        raise typer.Exit(2)
    user = _run(_settings(data_dir), lambda ctx: accounts.create_user(ctx, email, password, role))
    print(json.dumps({"user_id": user.id, "email": user.email, "role": user.role}))


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help="Owner's email.")],
    name: Annotated[str, typer.Option(help="Token name, unique per user.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = "runs:read,results:read",
    expires_in_days: Annotated[int, typer.Option(min=1, max=3650)] = 30,
    tester_army: Annotated[
        bool, typer.Option("--tester-army", help="An sk_ key, as Tester Army clients expect.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Issue a token; the raw token is printed alone on the last line."""
    from runplane.services import accounts

    try:
        chosen = [Scope(s.strip()) for s in scopes.split(",") if s.strip()]
    except ValueError as exc:
        typer.echo(f"error: {exc}; known scopes: {', '.join(Scope)}", err=True)
        raise typer.Exit(2) from None
    issued = _run(
        _settings(data_dir),
        lambda ctx: accounts.issue_for_email(
            ctx,
            email,
            name,
            chosen,
            expires_in_days,
            prefix=accounts.TESTER_ARMY_PREFIX if tester_army else accounts.TOKEN_PREFIX,
        ),
    )
    print(
        f"token {issued.row.name} (id {issued.row.id}) for {email}, scopes "
        f"{','.join(issued.row.scopes)}, expires {issued.row.expires_at:%Y-%m-%d}"
    )
    print(issued.token)


@projects_app.command("create")
def projects_create(
    repository: Annotated[str, typer.Option(help="owner/name, as runs name it.")],
    repo_url: Annotated[str, typer.Option(help="Git URL or local path.")],
    test_command: Annotated[
        str | None, typer.Option(help="Shell command; may use {failed_tests}.")
    ] = None,
    build_command: Annotated[str | None, typer.Option(help="Shell command run first.")] = None,
    timeout_seconds: Annotated[int | None, typer.Option(min=1)] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    junit_path: Annotated[str | None, typer.Option(help="Report path in the checkout.")] = None,
    platform: Annotated[str, typer.Option(help="linux or windows.")] = "linux",
    grace_period_seconds: Annotated[float | None, typer.Option(min=0)] = None,
    program: Annotated[
        str | None, typer.Option(help="Program the build produces (regression tests).")
    ] = None,
    test_timeout_seconds: Annotated[int, typer.Option(min=1, help="Per regression test.")] = 600,
    artifact_path: Annotated[
        list[str] | None, typer.Option(help="Glob of files each run keeps, repeatable.")
    ] = None,
    max_parallel_runs: Annotated[
        int | None, typer.Option(min=1, help="Runs of the project executing at once at most.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a project and print it as JSON."""
    from runplane.services import projects

    if not test_command and not program:
        typer.echo("error: give --test-command, or --program for regression tests", err=True)
        raise typer.Exit(2)
    pairs: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.echo(f"error: --env {item!r} is not KEY=VALUE", err=True)
            raise typer.Exit(2)
        pairs[key] = value
    spec = projects.ProjectSpec(
        repository=repository,
        repo_url=repo_url,
        test_command=test_command,
        build_command=build_command,
        timeout_seconds=timeout_seconds,
        env=pairs,
        junit_path=junit_path,
        platform=platform,
        grace_period_seconds=grace_period_seconds,
        program=program,
        test_timeout_seconds=test_timeout_seconds,
        artifact_paths=list(artifact_path or []),
        max_parallel_runs=max_parallel_runs,
    )
    project = _run(_settings(data_dir), lambda ctx: projects.create(ctx, None, spec))
    print(
        json.dumps(
            {
                "id": project.id,
                "repository": project.repository,
                "repo_url": project.repo_url,
                "build_command": project.build_command,
                "test_command": project.test_command,
                "timeout_seconds": project.timeout_seconds,
                "env": project.env,
                "junit_path": project.junit_path,
                "platform": project.platform,
                "program": project.program,
            }
        )
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
