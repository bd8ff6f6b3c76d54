"""Engines, sessions and migrations; the only place that knows SQLite from PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Arbitrary constant: serialises concurrent migrations of several hosts on PostgreSQL.
MIGRATION_LOCK_ID = 7_240_531
#: Execution option marking an engine whose transactions only read.
READ_ONLY_OPTION = "runplane_read_only"


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def sync_url(url: str) -> str:
    """The synchronous twin of an async URL (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite", "sqlite")


def _configure_sqlite(sync_engine: Engine) -> None:
    # WAL lets readers proceed during a write; BEGIN IMMEDIATE takes the write lock
    # up front so two writers queue on busy_timeout instead of failing with
    # "database is locked" when a deferred transaction tries to upgrade its lock.
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only units of work stay deferred: WAL lets them run beside a writer.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 8) -> AsyncEngine:
    """The engine: ``pool_size`` connections kept, as many again opened under load."""
    if is_sqlite_url(url):
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=60,
            connect_args={"timeout": 30},
        )
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for writing, or (``read_only``) for reading without taking SQLite's write lock."""
    bind = engine.execution_options(**{READ_ONLY_OPTION: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error."""
    async with sessions() as session, session.begin():
        yield session


def ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name``: procrastinate's tables are its own schema, not ours."""
    return not (name or "").startswith("procrastinate")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


#: Lets a sweeper find the jobs of a run (``run-<id>``) whatever their status;
#: procrastinate's own index on ``queueing_lock`` covers waiting jobs only.
_JOBS_LOCK_INDEX = (
    "CREATE INDEX IF NOT EXISTS runplane_procrastinate_jobs_queueing_lock"
    " ON procrastinate_jobs (queueing_lock)"
)


def _apply_procrastinate_schema(conn: Connection) -> None:
    """procrastinate's tables, functions and triggers (distributed dispatch), once.

    Called under the migration lock, so of several processes starting together one
    applies it and the others find it applied.
    """
    from procrastinate.schema import SchemaManager

    if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
        # The raw psycopg connection: without parameters psycopg sends the script as
        # one simple query (many statements, and no placeholder parsing of its '%').
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(SchemaManager.get_schema())
    conn.execute(text(_JOBS_LOCK_INDEX))
    conn.commit()


def migrate(url: str) -> None:
    """Upgrade the schema to head; safe to call from several processes at once."""
    if is_sqlite_url(url):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sync_url(url))
    if is_sqlite_url(url):
        _configure_sqlite(engine)
    try:
        with engine.connect() as conn:
            if not is_sqlite_url(url):
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
                conn.commit()
            try:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                if not is_sqlite_url(url):
                    _apply_procrastinate_schema(conn)
            finally:
                if not is_sqlite_url(url):
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
                    conn.commit()
    finally:
        engine.dispose()
