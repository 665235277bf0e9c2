"""browser: stored browser specs, element fingerprints per spec step, cached heals

Revision ID: 0011_browser
Revises: 0010_usage_task
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_browser"
down_revision = "0010_usage_task"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browser_specs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_browser_specs_project_updated", "browser_specs", ["project_id", "updated_at"])
    op.create_table(
        "browser_fingerprints",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("spec_key", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("locator", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "browser_heals",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("spec_key", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("old_locator", sa.JSON, nullable=False),
        sa.Column("new_locator", sa.JSON, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("browser_heals")
    op.drop_table("browser_fingerprints")
    op.drop_table("browser_specs")
