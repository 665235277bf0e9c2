"""prompt registry: immutable prompt versions and the labels that pick them

Revision ID: 0004_prompts
Revises: 0003_ledger
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_prompts"
down_revision = "0003_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("source_text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_prompt_versions_name_version"),
        sa.UniqueConstraint("name", "content_hash", name="uq_prompt_versions_name_hash"),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("weight", sa.Float, nullable=True),
        sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("name", "label"),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["prompt_versions.name", "prompt_versions.version"],
            name="fk_prompt_labels_version",
        ),
    )
    # Per-version results: GET /api/prompts/{name}/stats reads usage rows of one prompt in a window.
    op.create_index("ix_usage_records_prompt", "usage_records", ["prompt_name", "prompt_version", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_prompt", table_name="usage_records")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
