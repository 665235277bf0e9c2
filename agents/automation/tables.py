"""ORM table ``automation_cases``: the automation bodies ``automation.generate`` created, one per task."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class AutomationCaseRow(Base):
    __tablename__ = "automation_cases"
    __table_args__ = (
        # A retried create step finds the case its earlier execution stored instead of adding another.
        UniqueConstraint("task_id", name="uq_automation_cases_task_id"),
        Index("ix_automation_cases_project_created", "project_id", "created_at"),
        Index("ix_automation_cases_testcase", "testcase_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(32))
    testcase_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    validation: Mapped[dict[str, Any]] = mapped_column(JSON)
    review_action: Mapped[str] = mapped_column(String(16))
    prompt_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prompt_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
