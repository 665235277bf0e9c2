"""kb: knowledge-base documents (their chunks and vectors live in Chroma)

Revision ID: 0006_kb
Revises: 0005_tasks
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_kb"
down_revision = "0005_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("title", sa.String(500), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("chars", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "content_hash", name="uq_kb_documents_project_hash"),
    )
    op.create_index("ix_kb_documents_project_created", "kb_documents", ["project_id", "created_at"])
    op.create_index("ix_kb_documents_project_source", "kb_documents", ["project_id", "source"])


def downgrade() -> None:
    op.drop_table("kb_documents")
