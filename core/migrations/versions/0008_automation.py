"""automation: automation cases created by automation.generate (one per task)

Revision ID: 0008_automation
Revises: 0007_testcases
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_automation"
down_revision = "0007_testcases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation_cases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("testcase_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("validation", sa.JSON, nullable=False),
        sa.Column("review_action", sa.String(16), nullable=False),
        sa.Column("prompt_name", sa.String(128), nullable=True),
        sa.Column("prompt_version", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task_id", name="uq_automation_cases_task_id"),
    )
    op.create_index("ix_automation_cases_project_created", "automation_cases", ["project_id", "created_at"])
    op.create_index("ix_automation_cases_testcase", "automation_cases", ["testcase_id"])


def downgrade() -> None:
    op.drop_table("automation_cases")
