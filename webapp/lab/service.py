"""What the lab's pages and its API both do: receive, finalise, create and edit work orders,
and find the state of a record's stored document. Every write that makes a document due
queues its job in the same transaction (`enqueue` joins it), so nothing is made twice and
nothing is forgotten when one half fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from webapp import jobs
from webapp.db import write_txn
from webapp.documents.base import FieldProblem, validate
from webapp.documents.potting_lots import MAX_ID
from webapp.errors import Conflict, InvalidParams, NotFound
from webapp.extensions import db
from webapp.lab.records import file_safe, local_today, next_number
from webapp.models import (
    JOB_IS_LIVE,
    AnalysisType,
    Artifact,
    Job,
    Origin,
    OutboxItem,
    Protocol,
    ProtocolStatus,
    Report,
    User,
    Veterinarian,
    WorkOrder,
    WorkOrderItem,
    utcnow,
)

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
SERVICES = {
    AnalysisType.HISTOPATHOLOGY.value: ("Estudio histopatológico", 4200),
    AnalysisType.CYTOLOGY.value: ("Citología", 3850),
}


def get_protocol(protocol_id: Any, *, lock: bool = False) -> Protocol:
    protocol = (
        db.session.get(Protocol, protocol_id, with_for_update=lock, populate_existing=lock)
        if _is_id(protocol_id)
        else None
    )
    if protocol is None:
        raise NotFound("unknown_protocol", id=str(protocol_id)[:20])
    return protocol


def get_report(report_id: Any) -> Report:
    report = db.session.get(Report, report_id) if _is_id(report_id) else None
    if report is None:
        raise NotFound("unknown_report", id=str(report_id)[:20])
    return report


def label_file_name(protocol: Protocol) -> str:
    return f"label_{file_safe(protocol.number or str(protocol.id))}.pdf"


def report_file_name(report: Report) -> str:
    return f"report_{file_safe(report.protocol.number or str(report.id))}_v{report.version}.pdf"


def work_order_file_name(order: WorkOrder) -> str:
    return f"work_order_{order.id}_v{order.pdf_version or order.version}.pdf"


@dataclass(frozen=True)
class MailState:
    status: str  # pending, done, failed
    attempts: int
    last_error: str | None
    to: str
    done_at: Any
    next_at: Any


def report_mail_state(report: Report) -> MailState | None:
    """How the report's mail to the veterinarian is doing (None: not written yet)."""
    item = db.session.scalars(
        sa.select(OutboxItem).where(OutboxItem.key == f"report:{report.id}:v{report.version}")
    ).first()
    if item is None:
        return None
    return MailState(
        item.status,
        item.attempts,
        item.last_error,
        item.payload.get("to", ""),
        item.done_at,
        item.next_at,
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and 1 <= value <= MAX_ID


# -- reception ------------------------------------------------------------------------------------


def receive(
    session: Session, protocol: Protocol, user: User | None, origin: Origin = Origin.USER
) -> Job:
    """Number the protocol, mark it received today and queue its reception label, all in the
    caller's transaction: once it commits, the label is on its way (and opens at once later)."""
    if protocol.status != ProtocolStatus.REGISTERED:
        raise Conflict("already_received", number=protocol.number or "")
    today = local_today()
    protocol.number = next_number(session, protocol.analysis, today.year)
    protocol.status = ProtocolStatus.RECEIVED.value
    protocol.received_on = today
    protocol.received_at = utcnow()
    session.flush()
    job, _ = jobs.enqueue(
        session, "reception_label", {"protocol_id": protocol.id}, owner=user, origin=origin
    )
    return job


def queue_documents(session: Session, protocol_ids: list[int]) -> int:
    """Reception labels of protocols received without the page (the demo data), and the PDFs
    of the work orders on them: system jobs."""
    from webapp.models import WorkOrder, WorkOrderItem

    for protocol_id in protocol_ids:
        jobs.enqueue(session, "reception_label", {"protocol_id": protocol_id}, origin=Origin.EVENT)
    orders = session.scalars(
        sa.select(WorkOrder.id)
        .join(WorkOrderItem, WorkOrderItem.work_order_id == WorkOrder.id)
        .where(WorkOrderItem.protocol_id.in_(protocol_ids), WorkOrder.pdf_artifact_id.is_(None))
        .distinct()
    ).all()
    for order_id in orders:
        jobs.enqueue(session, "work_order", {"work_order_id": order_id}, origin=Origin.EVENT)
    return len(protocol_ids)


def _one_line(value: str) -> str:
    """A one-line text (it ends up in mail headers and on labels): no control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FieldProblem("field_one_line")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]


class NewSample(BaseModel):
    """A sample that arrives without being announced: registered and received in one step."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    veterinarian_id: Id
    animal_id: OneLine = Field(min_length=1, max_length=80)
    species: OneLine = Field(min_length=1, max_length=80)
    analysis_type: Literal["cytology", "histopathology"]


def receive_protocol(protocol_id: Any, user: User | None, origin: Origin = Origin.USER) -> Job:
    """Number protocol `protocol_id` and queue its label (404 unknown, 409 received already)."""
    with write_txn() as session:
        protocol = get_protocol(protocol_id, lock=True)
        return receive(session, protocol, user, origin)


def register_and_receive(raw: dict[str, Any], user: User) -> tuple[Protocol, Job]:
    sample = validate(NewSample, raw)
    with write_txn() as session:
        if session.get(Veterinarian, sample.veterinarian_id) is None:
            raise InvalidParams.field(
                "veterinarian_id", "unknown_veterinarian", id=sample.veterinarian_id
            )
        protocol = Protocol(
            veterinarian_id=sample.veterinarian_id,
            animal_id=sample.animal_id,
            species=sample.species,
            analysis_type=sample.analysis_type,
        )
        session.add(protocol)
        session.flush()
        job = receive(session, protocol, user, Origin.USER)
    return protocol, job


# -- work orders ----------------------------------------------------------------------------------


class NewWorkOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    veterinarian_id: Id
    protocol_ids: list[Id] = Field(min_length=1, max_length=200)
    notes: str = Field("", max_length=5000)


class WorkOrderChanges(BaseModel):
    """`PATCH /api/v1/work-orders/<id>` and the edit form: the fields that may change."""

    model_config = ConfigDict(extra="forbid")
    notes: str | None = Field(None, max_length=5000)
    protocol_ids: list[Id] | None = Field(None, min_length=1, max_length=200)


def _check_protocols(vet_id: int, ids: list[int]) -> list[Protocol]:
    found = {
        p.id: p for p in db.session.scalars(sa.select(Protocol).where(Protocol.id.in_(set(ids))))
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidParams.field(
            "protocol_ids", "unknown_protocol", id=", ".join(map(str, missing[:10]))
        )
    foreign = [i for i in ids if found[i].veterinarian_id != vet_id]
    if foreign:
        raise InvalidParams.field(
            "protocol_ids", "protocols_of_other_vet", ids=", ".join(map(str, foreign[:10]))
        )
    return [found[i] for i in dict.fromkeys(ids)]


def _items(protocols: list[Protocol]) -> list[WorkOrderItem]:
    return [
        WorkOrderItem(
            protocol_id=p.id,
            service=SERVICES[p.analysis_type][0],
            price_cents=SERVICES[p.analysis_type][1],
        )
        for p in protocols
    ]


def create_work_order(raw: Any, user: User, origin: Origin = Origin.USER) -> tuple[WorkOrder, Job]:
    """A new work order and, in the same transaction, its PDF's job."""
    data = validate(NewWorkOrder, raw)
    with write_txn() as session:
        if session.get(Veterinarian, data.veterinarian_id) is None:
            raise InvalidParams.field(
                "veterinarian_id", "unknown_veterinarian", id=data.veterinarian_id
            )
        protocols = _check_protocols(data.veterinarian_id, data.protocol_ids)
        order = WorkOrder(
            veterinarian_id=data.veterinarian_id,
            notes=data.notes,
            created_by_id=user.id,
            items=_items(protocols),
        )
        session.add(order)
        session.flush()
        job, _ = jobs.enqueue(
            session, "work_order", {"work_order_id": order.id}, owner=user, origin=origin
        )
    return order, job


def get_work_order(order_id: Any, *, lock: bool = False) -> WorkOrder:
    order = (
        db.session.get(WorkOrder, order_id, with_for_update=lock, populate_existing=lock)
        if _is_id(order_id)
        else None
    )
    if order is None:
        raise NotFound("unknown_work_order", id=str(order_id)[:20])
    return order


def update_work_order(
    order_id: Any, raw: Any, user: User, origin: Origin = Origin.USER
) -> tuple[WorkOrder, Job | None]:
    """Apply the changes; a real change bumps the version and queues its PDF, together."""
    changes = validate(WorkOrderChanges, raw, name="body")
    with write_txn() as session:
        order = get_work_order(order_id, lock=True)
        changed = False
        if changes.notes is not None and changes.notes != order.notes:
            order.notes, changed = changes.notes, True
        if changes.protocol_ids is not None:
            protocols = _check_protocols(order.veterinarian_id, changes.protocol_ids)
            if [p.id for p in protocols] != [item.protocol_id for item in order.items]:
                order.items = _items(protocols)
                changed = True
        if not changed:
            return order, None
        order.version = WorkOrder.version + 1  # in SQL, on the locked row
        session.flush()
        session.refresh(order, ["version"])
        # An older version's generation still queued or running is superseded: one at a time.
        for older in session.scalars(
            sa.select(Job.id).where(
                Job.kind == "work_order",
                Job.subject == f"work_order:{order.id}",
                JOB_IS_LIVE,
            )
        ).all():
            jobs.transitions.cancel(session, older)
        job, _ = jobs.enqueue(
            session, "work_order", {"work_order_id": order.id}, owner=user, origin=origin
        )
    return order, job


# -- a record's stored document -------------------------------------------------------------------

DocStatus = Literal["current", "updating", "stale", "missing", "failed"]


@dataclass(frozen=True)
class StoredDocument:
    """A record's newest stored file and how it relates to the record's data now."""

    artifact: Artifact | None
    status: DocStatus
    live_job: Job | None

    @property
    def header(self) -> str:
        return "updating" if self.status == "missing" else self.status


def live_job(kind: str, subject: str) -> Job | None:
    """The document's job being made now, if any."""
    return last_job(kind, subject, live=True)


def last_job(kind: str, subject: str, *, live: bool = False) -> Job | None:
    query = sa.select(Job).where(Job.kind == kind, Job.subject == subject, Job.parent_id.is_(None))
    if live:
        query = query.where(JOB_IS_LIVE)
    return db.session.scalars(query.order_by(Job.created_at.desc()).limit(1)).first()


def work_order_document(order: WorkOrder) -> StoredDocument:
    """current: the stored PDF shows this version; updating: a newer one is being made (the
    stored one is served meanwhile); stale: the data moved on and nothing is being made;
    missing: none stored yet, one being made; failed: none stored and its generation failed."""
    subject = f"work_order:{order.id}"
    live = live_job("work_order", subject)
    artifact = order.pdf_artifact
    if artifact is None:
        if live is None:
            last = last_job("work_order", subject)
            if last is not None and last.status == "failed":
                return StoredDocument(None, "failed", last)
        return StoredDocument(None, "missing", live)
    newer = live is not None and (live.summary or {}).get("version", 0) > (order.pdf_version or 0)
    if newer:
        return StoredDocument(artifact, "updating", live)
    current = order.pdf_version == order.version
    return StoredDocument(artifact, "current" if current else "stale", None)


def ensure_work_order_pdf(order: WorkOrder, user: User, origin: Origin) -> StoredDocument:
    """The stored document; when there is none and nothing is making one, start it (a view of
    a work order whose generation failed or was never queued still ends with a file)."""
    document = work_order_document(order)
    if document.status == "failed":
        return document  # not again on every view: a person retries the failed job
    if document.artifact is None and document.live_job is None:
        job, _ = jobs.submit(user, "work_order", {"work_order_id": order.id}, origin=origin)
        return StoredDocument(None, "missing", job)
    return document
