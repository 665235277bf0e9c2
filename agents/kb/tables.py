"""ORM tables of the knowledge base: ``kb_documents`` (one row a document; its chunks live in Chroma) and
``kb_uploads`` (a parsed document waiting for its ``kb.ingest`` task)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class KBDocumentRow(Base):
    __tablename__ = "kb_documents"
    __table_args__ = (
        UniqueConstraint("project_id", "content_hash", name="uq_kb_documents_project_hash"),
        Index("ix_kb_documents_project_created", "project_id", "created_at"),
        Index("ix_kb_documents_project_source", "project_id", "source"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(500), nullable=True)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    content_type: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))
    chunks: Mapped[int] = mapped_column(Integer)
    chars: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KBUploadRow(Base):
    """A large document between its upload and its task: parsed and chunked, not yet embedded.

    Its id becomes the document's id; the row goes in the same transaction as
    the document's row is written.
    """

    __tablename__ = "kb_uploads"
    __table_args__ = (Index("ix_kb_uploads_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(500), nullable=True)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    content_type: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    chunks: Mapped[list[Any]] = mapped_column(JSON)  # [[section, text, sha256], ...] in document order
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
