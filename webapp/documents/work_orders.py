"""`work_order`: a work order's PDF, made once per version (DESIGN §4a). Creating or editing a
work order queues it in the same transaction; views serve the newest stored file at once.
The subject (`work_order:<id>`) and the version in the input hash make every view and every
edit of one version share one generation — the unique index, not a cache key with a timeout."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from webapp.documents.base import DocumentKind, Part, Prepared, RenderContext
from webapp.documents.potting_lots import MAX_ID
from webapp.errors import InvalidParams, PermanentError
from webapp.extensions import db
from webapp.lab import pdfs
from webapp.lab.records import finished_job, local_date, take_file
from webapp.messages import N_
from webapp.models import Job, JobStatus, User, WorkOrder


class WorkOrderParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    work_order_id: int = Field(ge=1, le=MAX_ID)


def work_order_data(order: WorkOrder) -> pdfs.WorkOrderData:
    config, vet = current_app.config, order.veterinarian
    return pdfs.WorkOrderData(
        lab_name=config["LAB_NAME"],
        lab_address=config["LAB_ADDRESS"],
        work_order_id=order.id,
        version=order.version,
        created_on=local_date(order.created_at),
        updated_on=local_date(order.updated_at),
        veterinarian=vet.name,
        clinic=vet.clinic,
        veterinarian_email=vet.email,
        lines=tuple(
            pdfs.WorkOrderLine(
                protocol_number=item.protocol.number or "—",
                animal_id=item.protocol.animal_id,
                species=item.protocol.species,
                service=item.service,
                quantity=item.quantity,
                price_cents=item.price_cents,
            )
            for item in order.items
        ),
        notes=order.notes,
    )


class WorkOrderKind(DocumentKind):
    name = "work_order"
    title = N_("Work order")
    unit = "page"
    roles = frozenset({"staff", "admin", "system"})
    Params = WorkOrderParams
    back_endpoint = "lab.work_orders"
    back_label = N_("Back to the work orders")

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: WorkOrderParams = params
        version = db.session.scalar(
            sa.select(WorkOrder.version).where(WorkOrder.id == p.work_order_id)
        )
        if version is None:
            raise InvalidParams.field("work_order_id", "unknown_work_order", id=p.work_order_id)
        return Prepared(
            params={"work_order_id": p.work_order_id},
            data_version=str(version),
            total=1,
            summary={"work_order_id": p.work_order_id, "version": version},
        )

    def subject(self, params: dict[str, Any]) -> str | None:
        return f"work_order:{params['work_order_id']}"

    def file_name(self, job: Job) -> str:
        return f"work_order_{job.params['work_order_id']}_v{job.summary.get('version', 1)}.pdf"

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        order = db.session.get(WorkOrder, job.params["work_order_id"])
        if order is None:
            raise PermanentError("work_order_gone", id=job.params["work_order_id"])
        # Edited since it was queued: it prints the order as it is now (the edit queued the
        # newer version too, which then finds the same bytes); never a failure for an edit.
        with force_locale(current_app.config["LAB_LOCALE"]):
            ctx.progress(0, "drawing_pages", force=True)
            pages = pdfs.render_work_order(work_order_data(order), out)
        ctx.progress(min(pages, job.progress_total), "writing_file", force=True)

    def documents(self, session: Session, scope: Any) -> list[dict[str, Any]] | None:
        """Work orders: all, those whose stored PDF is older than their version ("stale"), or
        those changed since a moment."""
        query = sa.select(WorkOrder.id)
        if scope == "stale":
            query = query.where(
                sa.or_(WorkOrder.pdf_version.is_(None), WorkOrder.pdf_version < WorkOrder.version)
            )
        elif isinstance(scope, datetime):
            query = query.where(WorkOrder.updated_at >= scope)
        return [{"work_order_id": i} for i in session.scalars(query.order_by(WorkOrder.id))]

    def on_transition(
        self, session: Session, name: str, job_id: str, old: str | None, new: str
    ) -> None:
        """Done: the work order's file is this one, unless a newer version's landed first."""
        if new != JobStatus.DONE:
            return
        job = finished_job(session, job_id)
        version = job.summary.get("version", 0)
        take_file(
            session,
            WorkOrder,
            WorkOrder.pdf_artifact_id,
            job.params["work_order_id"],
            job.artifact_id,
            sa.or_(WorkOrder.pdf_version.is_(None), WorkOrder.pdf_version <= version),
            pdf_version=version,
        )
