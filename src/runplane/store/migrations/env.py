"""Alembic environment: runs on the connection handed in by ``runplane.store.database.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from runplane.store.database import ours
from runplane.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as conn:
            context.configure(
                connection=conn,
                target_metadata=target_metadata,
                render_as_batch=True,
                include_name=ours,
            )
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_name=ours,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
