"""ledger: budget and rate-limit counters, open reservations, once-only claims

Revision ID: 0003_ledger
Revises: 0002_identity
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_ledger"
down_revision = "0002_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_counters",
        sa.Column("counter", sa.String(255), nullable=False),
        sa.Column("window_key", sa.String(32), nullable=False),
        sa.Column("used", sa.Float, nullable=False),
        sa.Column("reserved", sa.Float, nullable=False),
        sa.Column("holds", sa.Integer, nullable=False),
        sa.Column("limit_value", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("counter", "window_key"),
    )
    op.create_index("ix_ledger_counters_window_key", "ledger_counters", ["window_key"])
    op.create_table(
        "ledger_reservations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("counter", sa.String(255), nullable=False),
        sa.Column("window_key", sa.String(32), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", "counter"),
    )
    op.create_index(
        "ix_ledger_reservations_counter_window", "ledger_reservations", ["counter", "window_key", "expires_at"]
    )
    op.create_table(
        "ledger_claims",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("ledger_claims")
    op.drop_table("ledger_reservations")
    op.drop_table("ledger_counters")
