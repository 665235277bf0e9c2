"""usage_records.task_id: the task whose model calls a row records, so a task's cost is exact

Revision ID: 0010_usage_task
Revises: 0009_kb_uploads
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_usage_task"
down_revision = "0009_kb_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("task_id", sa.String(64), nullable=True))
        batch.create_index("ix_usage_records_task_id", ["task_id"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index("ix_usage_records_task_id")
        batch.drop_column("task_id")
