"""ORM tables of budgets and their alerts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class BudgetRow(Base):
    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("project_id", "scope", "scope_id", "period", name="uq_budget_scope_period"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(256))
    period: Mapped[str] = mapped_column(String(16))
    limit_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    downgrade_at: Mapped[float] = mapped_column(Float, default=0.9)
    thresholds: Mapped[list[float]] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    budget_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(8))
    window: Mapped[str] = mapped_column(String(32))
    used: Mapped[float] = mapped_column(Float)
    limit: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    webhook_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
