"""ORM table ``testcases``: the cases a generation task produced, with their review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class TestCaseRow(Base):
    __tablename__ = "testcases"
    __table_args__ = (
        Index("ix_testcases_task", "task_id", "seq"),
        Index("ix_testcases_project_created", "project_id", "created_at"),
        Index("ix_testcases_prompt_review", "prompt_name", "prompt_version", "review_status"),
    )
    __test__ = False  # not a pytest class

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    module: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(2))
    type: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # preconditions, steps, covers
    source: Mapped[str] = mapped_column(String(16))
    prompt_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prompt_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    review_status: Mapped[str] = mapped_column(String(16), default="pending")
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
