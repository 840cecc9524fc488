"""SQL models. The `Job` row is the source of truth for every job (DESIGN §2)."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db
from webapp.messages import Msg

if TYPE_CHECKING:  # db.Model is built at run time from Base
    from webapp.extensions import Base as Model
else:
    Model = db.Model


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


class User(UserMixin, Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(10), default=Role.STAFF.value)
    locale: Mapped[str | None] = mapped_column(sa.String(8))
    # A mail with the link when a long job ends while its page is not open (DESIGN §1, admin).
    ready_mail: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Part of every session's user id (`get_id`): logout and a password change add one, which
    # ends every session cookie issued before (webapp/auth.py).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and the session version."""
        return f"{self.id}.{self.session_version}"

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


class ApiToken(Model):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(80), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Written by requests that write anyway; reads note their use in Redis (webapp/auth.py).
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: never
    user: Mapped[User] = relationship()


class RememberToken(Model):
    """One browser's "stay logged in" cookie, stored hashed; a new value on every use."""

    __tablename__ = "remember_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # The value it replaced, still taken for a few seconds (tabs restored at once: webapp/auth.py).
    previous_sha256: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    rotated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class PottingLot(Model):
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
        """What a label prints."""
        return (
            self.id,
            self.lot_number,
            self.plant_name,
            self.pot_size,
            self.quantity,
            self.potting_date.isoformat(),
            self.location,
            self.customer or "",
        )


class Artifact(Model):
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
    # A record's own document (a final report, a work order, a reception label): retention
    # never removes it, however long ago a job last pointed at it.
    pinned: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Origin(enum.StrEnum):
    """Who started a job: a person (page or API), or the system on its own (no owner)."""

    USER = "user"
    API = "api"
    SCHEDULE = "schedule"
    REGENERATION = "regeneration"
    EVENT = "event"


# The live statuses as SQL constants: the live-job indexes' predicate and JOB_IS_LIVE say the same.
_LIVE_LITERALS = [f"'{status}'" for status in LIVE_STATUSES]
LIVE_WHERE = f"status IN ({', '.join(_LIVE_LITERALS)})"  # status IN ('queued', 'running')


class Job(Model):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(sa.String(24), primary_key=True, default=new_id)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    origin: Mapped[str] = mapped_column(sa.String(12), default=Origin.USER.value)
    kind: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # A document with an identity ("work_order:17"): one live job for everyone who asks.
    subject: Mapped[str | None] = mapped_column(sa.String(80))
    input_hash: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(12), default=JobStatus.QUEUED.value, index=True)
    unit: Mapped[str] = mapped_column(sa.String(12), default="label")
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    # Steps and errors are message codes with parameters (webapp/messages.py), never sentences.
    step_code: Mapped[str | None] = mapped_column(sa.String(40))
    step_params: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error_code: Mapped[str | None] = mapped_column(sa.String(40))
    error_params: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    # Every claim ever made, never reset (a retry resets `attempts`): a worker's lease is a
    # compare-and-set on this, so a worker of a cancelled run can never match a retried one.
    claims: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(sa.String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]  # last send to the broker (or when a delayed send is due)
    file_name: Mapped[str | None] = mapped_column(sa.String(200))
    artifact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("artifacts.id", ondelete="SET NULL")
    )
    # Big batches: internal chunk rows point at their parent; the parent counts finished chunks.
    parent_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    chunk_index: Mapped[int | None]
    # Bulk work over many documents: each document is a job of its own kind (visible, with its
    # subject) whose `batch_id` names the bulk job; the bulk job counts them in `items`.
    batch_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    items: Mapped[dict[str, int] | None] = mapped_column(sa.JSON)  # {done, failed, skipped}
    chunks_total: Mapped[int] = mapped_column(default=0)
    chunks_done: Mapped[int] = mapped_column(default=0)

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    artifact: Mapped[Artifact | None] = relationship()

    __table_args__ = (
        # Backs idempotent submit: one live job per owner and input (chunks have no input hash).
        sa.Index(
            "uq_jobs_live_input",
            "owner_id",
            "input_hash",
            unique=True,
            sqlite_where=sa.text(f"{LIVE_WHERE} AND subject IS NULL"),
            postgresql_where=sa.text(f"{LIVE_WHERE} AND subject IS NULL"),
        ),
        # A document with a subject is one live job per input whoever asks (DESIGN §3).
        sa.Index(
            "uq_jobs_live_subject",
            "kind",
            "subject",
            "input_hash",
            unique=True,
            sqlite_where=sa.text(f"{LIVE_WHERE} AND subject IS NOT NULL"),
            postgresql_where=sa.text(f"{LIVE_WHERE} AND subject IS NOT NULL"),
        ),
        sa.Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
        # The monitoring page reads the last day's finished jobs from this index alone.
        sa.Index("ix_jobs_finished_at", "finished_at", "status", "kind", "started_at", "parent_id"),
    )

    @property
    def state(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def step(self) -> Msg | None:
        return Msg(self.step_code, self.step_params or {}) if self.step_code else None

    @property
    def error(self) -> Msg | None:
        return Msg(self.error_code, self.error_params or {}) if self.error_code else None


#: "The job is queued or running" with the two values written into the SQL. The live-job unique
#: indexes are partial (LIVE_WHERE), and SQLite's planner takes a partial index only for a query
#: whose WHERE implies the index's with constants: with the values bound (`IN (?, ?)`) the twin
#: lookup of every submit read all the owner's jobs (ix_jobs_owner_id), or for a document with a
#: subject every top-level job (ix_jobs_parent_id), more with every day of history.
JOB_IS_LIVE = Job.status.in_([sa.literal_column(value) for value in _LIVE_LITERALS])


class OutboxItem(Model):
    """Work that must follow a state change (a mail, a webhook), written in the same transaction.

    `key` makes it idempotent: the same follow-up written twice (a retried job, a re-run bulk
    action) is one row, so it is done once. A dispatcher does it after the commit; the reaper
    re-drives rows that are still pending when they are due.
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]

    __table_args__ = (sa.Index("ix_outbox_status_next", "status", "next_at"),)


# -- the lab (DESIGN §1, §4a) ---------------------------------------------------------------------


def external_id() -> str:
    """What a reception label's QR code carries: 192 random bits, URL-safe, unguessable."""
    return secrets.token_urlsafe(24)


class AnalysisType(enum.StrEnum):
    CYTOLOGY = "cytology"
    HISTOPATHOLOGY = "histopathology"

    @property
    def code(self) -> str:
        """The two letters on labels and in protocol numbers."""
        return "CT" if self is AnalysisType.CYTOLOGY else "HP"


class ProtocolStatus(enum.StrEnum):
    REGISTERED = "registered"  # announced by the clinic, the sample not here yet
    RECEIVED = "received"
    PROCESSING = "processing"
    REPORTED = "reported"


class ReportStatus(enum.StrEnum):
    DRAFT = "draft"
    FINAL = "final"


class Veterinarian(Model):
    __tablename__ = "veterinarians"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    clinic: Mapped[str] = mapped_column(sa.String(160), default="")
    email: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Protocol(Model):
    """A sample sent by a veterinarian; numbered ("HP 26/0001") when the lab receives it."""

    __tablename__ = "protocols"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(sa.String(20), unique=True)
    external_id: Mapped[str] = mapped_column(sa.String(43), unique=True, default=external_id)
    veterinarian_id: Mapped[int] = mapped_column(sa.ForeignKey("veterinarians.id"), index=True)
    animal_id: Mapped[str] = mapped_column(sa.String(80))
    species: Mapped[str] = mapped_column(sa.String(80))
    analysis_type: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(
        sa.String(12), default=ProtocolStatus.REGISTERED.value, index=True
    )
    received_on: Mapped[date | None] = mapped_column(sa.Date, index=True)
    received_at: Mapped[datetime | None]
    assigned_to: Mapped[str | None] = mapped_column(sa.String(120))
    label_artifact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("artifacts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    veterinarian: Mapped[Veterinarian] = relationship()
    label_artifact: Mapped[Artifact | None] = relationship()

    @property
    def analysis(self) -> AnalysisType:
        return AnalysisType(self.analysis_type)


class Report(Model):
    """The pathologist's report on one protocol: DRAFT until finalised, then FINAL and mailed."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    protocol_id: Mapped[int] = mapped_column(sa.ForeignKey("protocols.id"), unique=True)
    status: Mapped[str] = mapped_column(sa.String(8), default=ReportStatus.DRAFT.value)
    version: Mapped[int] = mapped_column(default=1)
    clinical_history: Mapped[str] = mapped_column(sa.Text, default="")
    # [{"cassette": "A1", "tissue": "Piel", "observation": "…"}], one row per cassette.
    cassettes: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, default=list)
    diagnosis: Mapped[str] = mapped_column(sa.Text, default="")
    histopathologist: Mapped[str] = mapped_column(sa.String(120), default="")
    pdf_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    artifact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("artifacts.id", ondelete="SET NULL")
    )
    finalised_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    finalised_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    protocol: Mapped[Protocol] = relationship()
    artifact: Mapped[Artifact | None] = relationship()
    finalised_by: Mapped[User | None] = relationship()


class WorkOrder(Model):
    """A veterinarian's services on one or more protocols; every edit bumps `version`."""

    __tablename__ = "work_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    veterinarian_id: Mapped[int] = mapped_column(sa.ForeignKey("veterinarians.id"), index=True)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    version: Mapped[int] = mapped_column(default=1)
    # The newest stored PDF and the version it shows (set when its generation finishes).
    pdf_artifact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("artifacts.id", ondelete="SET NULL")
    )
    pdf_version: Mapped[int | None]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    veterinarian: Mapped[Veterinarian] = relationship()
    pdf_artifact: Mapped[Artifact | None] = relationship()
    items: Mapped[list[WorkOrderItem]] = relationship(
        order_by="WorkOrderItem.id", cascade="all, delete-orphan"
    )


class WorkOrderItem(Model):
    __tablename__ = "work_order_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("work_orders.id", ondelete="CASCADE"), index=True
    )
    protocol_id: Mapped[int] = mapped_column(sa.ForeignKey("protocols.id"))
    service: Mapped[str] = mapped_column(sa.String(160))
    quantity: Mapped[int] = mapped_column(default=1)
    price_cents: Mapped[int] = mapped_column(default=0)

    protocol: Mapped[Protocol] = relationship()


# -- admin (DESIGN §4b) ---------------------------------------------------------------------------


class ScheduleRun(Model):
    """One period of one schedule, run once: the unique key is what two schedulers (or a tick
    after a restart) agree on — whoever inserts the row first makes the period's job."""

    __tablename__ = "schedule_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    schedule: Mapped[str] = mapped_column(sa.String(60))  # "stats_daily@06:00"
    period: Mapped[str] = mapped_column(sa.String(12))  # "2026-12-01", "2026-W49"
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("schedule", "period", name="uq_schedule_runs_period"),)


class AuditEntry(Model):
    """Who did what, when, to which scope: every admin action."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(sa.String(40))
    scope: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    user: Mapped[User | None] = relationship()


# -- the nursery's printers ---------------------------------------------------------------------


class PrinterProfile(Model):
    """A user's printer: its layout (a preset or their own sizes in mm), start position on the
    sheet, printer offset and default copies. The one used last is preselected."""

    __tablename__ = "printer_profiles"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(60))
    layout: Mapped[str] = mapped_column(sa.String(40))  # a preset's key, or "custom"
    # A custom layout's measurements (webapp/pdf/layout.py `custom`): kind, label_w, label_h,
    # and for sheets page_w, page_h, cols, rows, left, top, gap_x, gap_y.
    custom: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    start_position: Mapped[int] = mapped_column(default=1)
    offset_x: Mapped[float] = mapped_column(default=0.0)
    offset_y: Mapped[float] = mapped_column(default=0.0)
    copies: Mapped[int] = mapped_column(default=1)
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("user_id", "name", name="uq_printer_profiles_name"),)
