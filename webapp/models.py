"""SQL models. The `Job` row is the source of truth for every job (DESIGN §2)."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no zone, so every timestamp in the database is UTC by convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return secrets.token_urlsafe(12)


class Role(enum.StrEnum):
    STAFF = "staff"
    ADMIN = "admin"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_live(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def is_final(self) -> bool:
        return not self.is_live


LIVE_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(10), default=Role.STAFF.value)
    locale: Mapped[str | None] = mapped_column(sa.String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def display_name(self) -> str:
        return self.name or self.email


class ApiToken(db.Model):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    user: Mapped[User] = relationship()


class PottingLot(db.Model):
    """One potting lot of the nursery's production (DESIGN §5 columns)."""

    __tablename__ = "potting_lots"
    id: Mapped[int] = mapped_column(primary_key=True)
    lot_number: Mapped[str] = mapped_column(sa.String(40), unique=True)
    plant_name: Mapped[str] = mapped_column(sa.String(200))
    pot_size: Mapped[str] = mapped_column(sa.String(20))
    quantity: Mapped[int]
    potting_date: Mapped[date] = mapped_column(sa.Date, index=True)
    location: Mapped[str] = mapped_column(sa.String(60), index=True)
    customer: Mapped[str | None] = mapped_column(sa.String(120))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def label_fields(self) -> tuple[Any, ...]:
        """What a label prints; hashed into the job's input hash as the data version."""
        return (self.id, self.lot_number, self.plant_name, self.pot_size, self.quantity,
                self.potting_date.isoformat(), self.location, self.customer or "")


class Artifact(db.Model):
    """A published file, content-addressed and shared by every job with the same input."""

    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    input_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    path: Mapped[str] = mapped_column(sa.String(300))  # relative to ARTIFACT_DIR
    size: Mapped[int]
    media_type: Mapped[str] = mapped_column(sa.String(80), default="application/pdf")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class Job(db.Model):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(sa.String(24), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    input_hash: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(12), default=JobStatus.QUEUED.value, index=True)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    progress_step: Mapped[str] = mapped_column(sa.String(120), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    worker: Mapped[str | None] = mapped_column(sa.String(80))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]  # last send to the broker (or when a delayed send is due)
    file_name: Mapped[str | None] = mapped_column(sa.String(200))
    artifact_id: Mapped[int | None] = mapped_column(sa.ForeignKey("artifacts.id", ondelete="SET NULL"))
    # Big batches: internal chunk rows point at their parent; the parent counts finished chunks.
    parent_id: Mapped[str | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    chunk_index: Mapped[int | None]
    chunks_total: Mapped[int] = mapped_column(default=0)
    chunks_done: Mapped[int] = mapped_column(default=0)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    artifact: Mapped[Artifact | None] = relationship()

    __table_args__ = (
        # Backs idempotent submit: one live job per owner and input (chunks have no input hash).
        sa.Index(
            "uq_jobs_live_input", "owner_id", "input_hash", unique=True,
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        ),
        sa.Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
    )

    @property
    def state(self) -> JobStatus:
        return JobStatus(self.status)
