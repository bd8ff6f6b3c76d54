"""index run log lines by byte offset

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_run_log_lines_run_offset", "run_log_lines", ["run_id", "byte_offset"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_run_log_lines_run_offset", table_name="run_log_lines")
