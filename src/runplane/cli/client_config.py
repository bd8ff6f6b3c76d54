"""Where the client commands connect, and with which token.

The server is ``--server``/``RUNPLANE_SERVER``, else the one saved by ``runplane login``,
else :data:`DEFAULT_SERVER`; the token is ``RUNPLANE_TOKEN``, else the saved one (sent only
to the server it was issued by). The config file holds ``{server, token}`` and is readable
by its owner only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runplane.cli.client_errors import ClientError

API_PREFIX = "/api/v1"
DEFAULT_SERVER = "http://127.0.0.1:8000"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$RUNPLANE_CONFIG``, else ``$XDG_CONFIG_HOME/runplane/config.json``, else
    ``~/.config/runplane/config.json``."""
    env = os.environ if env is None else env
    if env.get("RUNPLANE_CONFIG"):
        return Path(env["RUNPLANE_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else None
    return (base or Path.home() / ".config") / "runplane" / "config.json"


def read_config(path: Path) -> dict[str, str]:
    """The saved ``{server, token}``; empty when there is no file yet."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ClientError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ClientError(f"the config file {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ClientError(f"the config file {path} is not a JSON object")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def write_config(path: Path, values: Mapping[str, str]) -> None:
    """Replace the config file atomically; it is readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600 before anything is written to it, whatever the umask.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(dict(values), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def normalize_server(url: str) -> str:
    """``host:8000``, ``http://host:8000/`` and ``http://host:8000/api/v1`` all name one server."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


@dataclass(frozen=True, slots=True)
class Target:
    """A server and the token to send it (None: none known)."""

    server: str
    token: str | None
    #: Why a saved token was not used, for the 401 message.
    note: str | None = None


def resolve_target(server_option: str | None, env: Mapping[str, str] | None = None) -> Target:
    """Server: the option (or ``RUNPLANE_SERVER``), else the config file, else the default.
    Token: ``RUNPLANE_TOKEN``, else the config file's, which is sent only to the server it
    was issued by."""
    env = os.environ if env is None else env
    saved = read_config(config_path(env))
    saved_server = normalize_server(saved["server"]) if saved.get("server") else None
    explicit = server_option or env.get("RUNPLANE_SERVER")
    server = normalize_server(explicit) if explicit else (saved_server or DEFAULT_SERVER)
    if env.get("RUNPLANE_TOKEN"):
        return Target(server, env["RUNPLANE_TOKEN"].strip())
    if saved.get("token") and saved_server == server:
        return Target(server, saved["token"])
    note = None
    if saved.get("token") and saved_server:
        note = f"the saved token is for {saved_server}"
    return Target(server, None, note)
