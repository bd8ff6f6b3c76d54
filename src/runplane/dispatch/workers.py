"""Worker identities: ``host:pid:slot``, so a restarted server can tell its dead runs."""

from __future__ import annotations

import os
import socket


def worker_id(slot: int | str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{slot}"


def parse_worker_id(value: str) -> tuple[str, int] | None:
    parts = value.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1])
    except ValueError:
        return None
