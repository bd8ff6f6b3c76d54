"""What every service call needs: settings, the session factory and the run signals."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runplane.config import Settings
from runplane.store.blobs import BlobStore


class RunSignals(Protocol):
    """How services tell the dispatcher about a change, after the change is committed."""

    def run_queued(self, run_id: int) -> None: ...

    def cancel_requested(self, run_id: int) -> None: ...


class NoSignals:
    """For processes without workers (the CLI): workers find the change by polling."""

    def run_queued(self, run_id: int) -> None:
        return None

    def cancel_requested(self, run_id: int) -> None:
        return None


@dataclass(slots=True)
class Context:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    #: For units of work that only read (no write lock on SQLite).
    reads: async_sessionmaker[AsyncSession]
    secret_key: bytes
    signals: RunSignals
    blobs: BlobStore

    @property
    def instance_tag(self) -> str:
        """Names this installation (not this process): shared by hosts sharing the secret."""
        return hashlib.sha256(b"runplane-instance:" + self.secret_key).hexdigest()[:10]

    def process_marker_prefix(self, run_id: int) -> str:
        """Tags every process of ``run_id`` (see ``execution.process_tree``)."""
        return f"{self.instance_tag}-run-{run_id}-"


def load_secret_key(settings: Settings) -> bytes:
    """The configured key, or one generated once and kept in the data dir (mode 0600)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path: Path = settings.data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            tmp.rename(path) if not path.exists() else tmp.unlink()
        except OSError:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()
