"""usage_records.upstream_ms: the part of a call's latency spent waiting on the upstream

Rows written before it stay null (not measured), so reports leave them out of the upstream's share
instead of counting their whole latency as the gateway's own.

Revision ID: 0012_usage_upstream
Revises: 0011_browser
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_usage_upstream"
down_revision = "0011_browser"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("upstream_ms", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("upstream_ms")
