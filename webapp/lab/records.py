"""The lab's records as the kinds and views use them: receiving a protocol, the local date,
pinning a record's own file, and the data a report or a work order prints."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from webapp.db import serialize_on
from webapp.models import (
    AnalysisType,
    Artifact,
    Job,
    Protocol,
)


def local_today() -> date:
    return datetime.now(ZoneInfo(current_app.config["TZ"])).date()


def local_date(moment: datetime) -> date:
    """A naive-UTC timestamp's date where the lab is."""
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(current_app.config["TZ"])).date()


def file_safe(number: str) -> str:
    """ "HP 26/0001" → "HP_26-0001", for file names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "", number.replace(" ", "_").replace("/", "-"))


def pin(session: Session, artifact_id: int | None) -> None:
    """A record's own document is kept whatever the retention (webapp/jobs/reaper.py)."""
    if artifact_id is not None:
        session.execute(sa.update(Artifact).where(Artifact.id == artifact_id).values(pinned=True))


def unpin(session: Session, artifact_id: int | None) -> None:
    """A record's previous document, replaced: retention may take it once no record names it."""
    from webapp.models import Report, WorkOrder

    if artifact_id is None:
        return
    named = (
        session.scalar(sa.select(sa.func.count()).where(WorkOrder.pdf_artifact_id == artifact_id))
        or session.scalar(
            sa.select(sa.func.count()).where(Protocol.label_artifact_id == artifact_id)
        )
        or session.scalar(sa.select(sa.func.count()).where(Report.artifact_id == artifact_id))
    )
    if not named:
        session.execute(sa.update(Artifact).where(Artifact.id == artifact_id).values(pinned=False))


def take_file(
    session: Session,
    model: Any,
    column: Any,
    record_id: int,
    artifact_id: int | None,
    *conditions: Any,
    **values: Any,
) -> bool:
    """Record `record_id` of `model` names `artifact_id` in `column` from now on (when
    `conditions` hold): the new file is pinned, the one it replaces unpinned. Its `updated_at`
    stays: the record's data did not change, only its document."""
    replaced = session.scalar(sa.select(column).where(model.id == record_id))
    took = session.execute(
        sa.update(model)
        .where(model.id == record_id, *conditions)
        .values({column.key: artifact_id, "updated_at": model.updated_at, **values})
        .returning(model.id)
    ).first()
    if took:
        pin(session, artifact_id)
        if replaced != artifact_id:
            unpin(session, replaced)
    return took is not None


def finished_job(session: Session, job_id: str) -> Job:
    """The job as the transition just left it (an UPDATE the identity map has not seen)."""
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job


def next_number(session: Session, analysis: AnalysisType, year: int) -> str:
    """The next protocol number of this analysis and year: "HP 26/0042" (in the caller's write
    transaction, so two receptions never draw the same one: SQLite's write lock, or on
    PostgreSQL a transaction lock per prefix; the unique number is the last word)."""
    prefix = f"{analysis.code} {year % 100:02d}/"
    serialize_on(session, f"protocol-number {prefix}")
    numbers = session.scalars(
        sa.select(Protocol.number).where(Protocol.number.like(f"{prefix}%"))
    ).all()
    highest = max(
        (int(n[len(prefix) :]) for n in numbers if n and n[len(prefix) :].isdigit()), default=0
    )
    return f"{prefix}{highest + 1:04d}"
