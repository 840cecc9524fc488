"""`reception_label` (one protocol's label, made when it is received) and `reception_labels_day`
(every protocol received on a day, as one roll). DESIGN §1: 39 × 20 mm with a QR code to the
protocol's public page."""

from __future__ import annotations

import datetime as dt
import hashlib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from webapp.documents.base import DocumentKind, Part, Prepared, RenderContext
from webapp.documents.potting_lots import MAX_ID
from webapp.errors import InvalidParams, PermanentError
from webapp.extensions import db
from webapp.lab.labels import ReceptionLabel, public_url, qr_fits, write_labels
from webapp.lab.records import file_safe, finished_job, take_file
from webapp.messages import N_
from webapp.models import AnalysisType, Artifact, Job, JobStatus, Protocol, User

LAB_ROLES = frozenset({"staff", "admin", "system"})


def label_of(protocol: Protocol) -> ReceptionLabel:
    return ReceptionLabel(
        number=protocol.number or "",
        qr=public_url(current_app.config["SITE_URL"], protocol.external_id),
        animal=protocol.animal_id,
        species=protocol.species,
        analysis=AnalysisType(protocol.analysis_type).code,
    )


def check_qr(external_id: str) -> None:
    """Refuse a label whose QR modules would be finer than the printer can print (a long
    SITE_URL makes a denser code): better a clear error now than a label nobody can scan."""
    dpi = current_app.config["LABEL_PRINTER_DPI"]
    fits, width, smallest = qr_fits(public_url(current_app.config["SITE_URL"], external_id), dpi)
    if not fits:
        raise InvalidParams(
            "qr_too_dense", module=round(width, 3), smallest=round(smallest, 3), dpi=dpi
        )


def _created(protocols: list[Protocol]) -> datetime:
    """The PDF's creation date, pinned to the data: identical input, identical bytes."""
    return max((p.received_at or p.updated_at for p in protocols), default=datetime(2000, 1, 1))


class ProtocolParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    protocol_id: int = Field(ge=1, le=MAX_ID)


class ReceptionLabelKind(DocumentKind):
    name = "reception_label"
    title = N_("Reception label")
    unit = "label"
    roles = LAB_ROLES
    Params = ProtocolParams
    back_endpoint = "lab.reception"
    back_label = N_("Back to reception")

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: ProtocolParams = params
        row = db.session.execute(
            sa.select(Protocol.number, Protocol.external_id, Protocol.updated_at).where(
                Protocol.id == p.protocol_id
            )
        ).first()
        if row is None:
            raise InvalidParams.field("protocol_id", "unknown_protocol", id=p.protocol_id)
        if row.number is None:
            raise InvalidParams.field("protocol_id", "protocol_not_received", id=p.protocol_id)
        check_qr(row.external_id)
        return Prepared(
            params={"protocol_id": p.protocol_id},
            data_version=f"{row.number}|{row.updated_at.isoformat()}|{current_app.config['SITE_URL']}",
            total=1,
            summary={"number": row.number, "protocol_id": p.protocol_id},
        )

    def subject(self, params: dict[str, Any]) -> str | None:
        return f"protocol:{params['protocol_id']}"

    def file_name(self, job: Job) -> str:
        return f"label_{file_safe(job.summary.get('number', str(job.params['protocol_id'])))}.pdf"

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        protocol = db.session.get(Protocol, job.params["protocol_id"])
        if protocol is None or protocol.number is None:
            raise PermanentError("protocol_gone", id=job.params["protocol_id"])
        label, created = label_of(protocol), _created([protocol])
        ctx.progress(0, "drawing_labels", force=True)
        write_labels([label], out, created=created)
        ctx.progress(1, "writing_file", force=True)

    def documents(self, session: Session, scope: Any) -> list[dict[str, Any]] | None:
        """Received protocols: all, those whose label is missing or older than the protocol
        ("stale"), or those changed since a moment."""
        query = sa.select(Protocol.id).where(Protocol.number.is_not(None))
        if scope == "stale":
            query = query.outerjoin(Artifact, Artifact.id == Protocol.label_artifact_id).where(
                sa.or_(Artifact.id.is_(None), Artifact.created_at < Protocol.updated_at)
            )
        elif isinstance(scope, dt.datetime):
            query = query.where(Protocol.updated_at >= scope)
        return [{"protocol_id": i} for i in session.scalars(query.order_by(Protocol.id))]

    def on_transition(
        self, session: Session, name: str, job_id: str, old: str | None, new: str
    ) -> None:
        """Done: the protocol's label is this file from now on (opened without waiting)."""
        if new != JobStatus.DONE:
            return
        job = finished_job(session, job_id)
        take_file(
            session,
            Protocol,
            Protocol.label_artifact_id,
            job.params["protocol_id"],
            job.artifact_id,
        )


class DayParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    date: dt.date = Field(strict=False)  # "2026-12-01" from JSON and forms


class ReceptionLabelsDay(DocumentKind):
    name = "reception_labels_day"
    title = N_("Reception labels of a day")
    unit = "label"
    roles = LAB_ROLES
    Params = DayParams
    back_endpoint = "lab.reception"
    back_label = N_("Back to reception")

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: DayParams = params
        rows = db.session.execute(
            sa.select(Protocol.id, Protocol.number, Protocol.external_id, Protocol.updated_at)
            .where(Protocol.received_on == p.date, Protocol.number.is_not(None))
            .order_by(Protocol.number)
        ).all()
        if not rows:
            raise InvalidParams.field("date", "no_protocols_received", date=p.date.isoformat())
        check_qr(rows[0].external_id)  # every external id has the same length
        digest = hashlib.sha256(current_app.config["SITE_URL"].encode())
        for row in rows:
            digest.update(f"{row.id}:{row.number}:{row.updated_at.isoformat()};".encode())
        return Prepared(
            params={"date": p.date.isoformat()},
            data_version=digest.hexdigest(),
            total=len(rows),
            summary={
                "date": p.date.isoformat(),
                "protocols": len(rows),
                "first": rows[0].number,
                "last": rows[-1].number,
            },
        )

    def subject(self, params: dict[str, Any]) -> str | None:
        return f"reception_day:{params['date']}"

    def file_name(self, job: Job) -> str:
        return f"reception_labels_{job.params['date']}.pdf"

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        day = date.fromisoformat(job.params["date"])
        protocols = list(
            db.session.scalars(
                sa.select(Protocol)
                .where(Protocol.received_on == day, Protocol.number.is_not(None))
                .order_by(Protocol.number)
            )
        )
        labels, created = [label_of(p) for p in protocols], _created(protocols)
        if len(labels) != job.progress_total:
            raise PermanentError("protocols_changed")
        ctx.progress(0, "drawing_labels", force=True)
        write_labels(labels, out, created=created)
        ctx.progress(len(labels), "writing_file", force=True)
