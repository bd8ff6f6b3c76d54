"""What every client command shares: its options and :func:`connect`.

Every command takes ``--server``, ``--json`` (the API's JSON instead of tables) and
``--wait`` (sleep through a 429). Failures are one line on stderr and exit code 2
(:func:`fail`); a :class:`ClientError` inside :func:`connect` becomes one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer

from runplane.cli.client import Client
from runplane.cli.client_config import resolve_target
from runplane.cli.client_errors import ClientError, describe

#: ``--wait``: this many 429s are slept through per request.
WAIT_RETRIES = 3

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="RUNPLANE_SERVER",
        show_envvar=False,
        help="Server URL (env RUNPLANE_SERVER; else the one `runplane login` saved; "
        "else http://127.0.0.1:8000).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WaitOpt = Annotated[
    bool,
    typer.Option("--wait", help="When rate limited, sleep Retry-After and try again (3 times)."),
]
LimitOpt = Annotated[int, typer.Option(min=1, max=100)]
OffsetOpt = Annotated[int, typer.Option(min=0)]


def rate_limit_retries(wait: bool) -> int:
    return WAIT_RETRIES if wait else 0


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def connect(server: str | None, wait: bool) -> Iterator[Client]:
    """A client for the chosen server; a ClientError inside becomes a one-line exit 2."""
    try:
        target = resolve_target(server)
    except ClientError as exc:
        fail(describe(exc))
    client = Client(target.server, target.token, rate_limit_retries=rate_limit_retries(wait))
    try:
        yield client
    except ClientError as exc:
        fail(describe(exc, target))
    finally:
        client.close()
