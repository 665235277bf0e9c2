"""kb_uploads: parsed documents waiting for their kb.ingest task to embed them

Revision ID: 0009_kb_uploads
Revises: 0008_automation
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_kb_uploads"
down_revision = "0008_automation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("title", sa.String(500), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("chunks", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kb_uploads_created", "kb_uploads", ["created_at"])


def downgrade() -> None:
    op.drop_table("kb_uploads")
