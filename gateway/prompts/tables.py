"""ORM tables of the prompt registry: immutable versions and the labels that point at them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class PromptVersionRow(Base):
    """One published version. Rows are only ever inserted: nothing updates or deletes them."""

    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_prompt_versions_name_version"),
        UniqueConstraint("name", "content_hash", name="uq_prompt_versions_name_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(String(8))  # 'file' | 'api'


class PromptLabelRow(Base):
    """A label (production, canary, …) of one prompt and the version it picks."""

    __tablename__ = "prompt_labels"
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "version"], ["prompt_versions.name", "prompt_versions.version"], name="fk_prompt_labels_version"
        ),
    )

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # where a rollback goes
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)  # canary: share of production calls
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)  # moved by an admin: file loading leaves it
    revision: Mapped[int] = mapped_column(Integer, default=1)  # +1 on every change: moves compare-and-set on it
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
