"""``runplane login``: exchange email and password for a token, saved in the config file."""

from __future__ import annotations

import re
import secrets
import socket
import sys
from typing import Annotated

import typer

from runplane.cli.client import Client
from runplane.cli.client_config import config_path, read_config, resolve_target, write_config
from runplane.cli.client_errors import ClientError, describe
from runplane.cli.client_options import JsonOpt, ServerOpt, WaitOpt, fail, rate_limit_retries
from runplane.cli.render import print_json, when

DEFAULT_LOGIN_SCOPES = "runs:read,runs:write,results:read,system:read"


def _default_token_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"
    return f"cli-{host}-{secrets.token_hex(3)}"


def login(
    server: ServerOpt = None,
    email: Annotated[str | None, typer.Option(help="Login email (prompted if absent).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin's first line.")
    ] = False,
    token_name: Annotated[
        str | None, typer.Option(help="Name of the new token (default: cli-HOST-RANDOM).")
    ] = None,
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = DEFAULT_LOGIN_SCOPES,
    expires_in_days: Annotated[int, typer.Option(min=1, max=90)] = 30,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Sign in: exchange email and password for a token, saved in the config file (0600)."""
    try:
        target = resolve_target(server)
        path = config_path()
        saved = read_config(path)
    except ClientError as exc:
        fail(describe(exc))
    if email is None:
        if password_stdin:
            fail("--email is required with --password-stdin")
        email = str(typer.prompt("Email"))
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(typer.prompt("Password", hide_input=True))
    name = token_name or _default_token_name()
    chosen = [s.strip() for s in scopes.split(",") if s.strip()]
    with Client(target.server, rate_limit_retries=rate_limit_retries(wait)) as client:
        try:
            issued = client.create_token(email, password, name, chosen, expires_in_days)
        except ClientError as exc:
            if exc.status_code == 401:
                fail(f"sign-in failed: {exc.message}")
            fail(describe(exc, target))
    try:
        write_config(path, {**saved, "server": target.server, "token": str(issued["token"])})
    except OSError as exc:
        fail(f"cannot write the config file {path}: {exc.strerror}")
    if as_json:
        shown = {k: v for k, v in issued.items() if k != "token"}
        print_json({"server": target.server, "email": email, "config": str(path), **shown})
        return
    typer.echo(
        f"signed in to {target.server} as {email}: token {issued['token_name']} "
        f"(scopes {', '.join(issued.get('scopes', []))}; expires {when(issued['expires_at'])}) "
        f"saved to {path}"
    )
