"""testcases: generated test cases with their review status

Revision ID: 0007_testcases
Revises: 0006_kb
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_testcases"
down_revision = "0006_kb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "testcases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("module", sa.String(200), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("prompt_name", sa.String(128), nullable=True),
        sa.Column("prompt_version", sa.Integer, nullable=True),
        sa.Column("review_status", sa.String(16), nullable=False),
        sa.Column("edited", sa.Boolean, nullable=False),
        sa.Column("review_note", sa.Text, nullable=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_testcases_task", "testcases", ["task_id", "seq"])
    op.create_index("ix_testcases_project_created", "testcases", ["project_id", "created_at"])
    op.create_index("ix_testcases_prompt_review", "testcases", ["prompt_name", "prompt_version", "review_status"])


def downgrade() -> None:
    op.drop_table("testcases")
