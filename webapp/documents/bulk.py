"""`bulk_protocol_update` and `bulk_mail` (DESIGN §4): an admin's change to many protocols at
once, as one job with a result per protocol (`items` {done, failed, skipped}) and a CSV report.
Updates are written a batch of protocols per transaction, so staff writes never wait long; a
re-run (after a crash, or the same request again) skips what is already so — and a mail goes
once per protocol and template whatever is re-run (the outbox key)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, format_date, gettext
from pydantic import BaseModel, ConfigDict, Field, model_validator

from webapp import mail
from webapp.db import write_txn
from webapp.documents.base import DocumentKind, FieldProblem, Part, Prepared, RenderContext
from webapp.documents.potting_lots import MAX_ID
from webapp.extensions import db
from webapp.jobs import outbox
from webapp.messages import N_
from webapp.models import Job, OutboxItem, Protocol, User

MAX_PROTOCOLS = 5000
BATCH = 100
Ids = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_ID)]], Field(min_length=1, max_length=MAX_PROTOCOLS)
]

# The bulk mails' templates: subject and body in the lab's language (LAB_LOCALE).
TEMPLATES: dict[str, tuple[str, str]] = {
    "sample_received": (
        N_("Sample %(number)s received"),
        N_(
            "Dear %(name)s,\n\nwe received the sample of %(animal)s (%(species)s) on %(received)s; "
            "its protocol number is %(number)s.\n\nKind regards,\n%(lab)s"
        ),
    ),
    "report_delayed": (
        N_("Report %(number)s: a few more days"),
        N_(
            "Dear %(name)s,\n\nthe report on %(animal)s (%(species)s, protocol %(number)s) needs "
            "a few more days: further stains were ordered.\n\nKind regards,\n%(lab)s"
        ),
    ),
}


class Changes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["received", "processing", "reported"] | None = None
    assigned_to: str | None = Field(None, max_length=120)

    @model_validator(mode="after")
    def _something(self) -> Changes:
        if self.status is None and "assigned_to" not in self.model_fields_set:
            raise FieldProblem("nothing_to_set", field="set")
        return self


class UpdateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    protocol_ids: Ids
    set: Changes = Field(strict=False)


class MailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    protocol_ids: Ids
    template: str

    @model_validator(mode="after")
    def _known(self) -> MailParams:
        if self.template not in TEMPLATES:
            raise FieldProblem("unknown_template", field="template", choices=", ".join(TEMPLATES))
        return self


def _version(ids: list[int]) -> str:
    row = db.session.execute(
        sa.select(sa.func.count(Protocol.id), sa.func.max(Protocol.updated_at)).where(
            Protocol.id.in_(ids)
        )
    ).one()
    return f"{row[0]}:{row[1]}"


class _Bulk(DocumentKind):
    unit = "document"
    suffix = ".csv"
    media_type = "text/csv"
    roles = frozenset({"admin"})
    back_endpoint = "admin.bulk"
    back_label = N_("Back to bulk actions")

    def file_name(self, job: Job) -> str:
        return f"{self.name}_{job.created_at:%Y-%m-%d_%H%M}.csv"

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        ids: list[int] = job.params["protocol_ids"]
        counts = {"done": 0, "failed": 0, "skipped": 0}
        rows: list[tuple[int, str, str, str]] = []
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            with write_txn() as session:
                found = {
                    p.id: p
                    for p in session.scalars(sa.select(Protocol).where(Protocol.id.in_(batch)))
                }
                for protocol_id in batch:
                    protocol = found.get(protocol_id)
                    if protocol is None:
                        outcome, note = "failed", "no such protocol"
                    else:
                        outcome, note = self.apply(session, job, protocol)
                    counts[outcome] += 1
                    rows.append(
                        (protocol_id, protocol.number or "" if protocol else "", outcome, note)
                    )
            ctx.progress(start + len(batch), "updating_protocols", force=True, items=dict(counts))
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["protocol_id", "number", "result", "note"])
        writer.writerows(rows)
        out.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")

    def apply(self, session: Any, job: Job, protocol: Protocol) -> tuple[str, str]:
        raise NotImplementedError


class BulkProtocolUpdate(_Bulk):
    name = "bulk_protocol_update"
    title = N_("Bulk protocol update")
    Params = UpdateParams

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: UpdateParams = params
        ids = list(dict.fromkeys(p.protocol_ids))
        changes = p.set.model_dump(exclude_unset=True)
        return Prepared(
            params={"protocol_ids": ids, "set": changes},
            data_version=_version(ids),
            total=len(ids),
            summary={"protocols": len(ids), "set": changes},
        )

    def apply(self, session: Any, job: Job, protocol: Protocol) -> tuple[str, str]:
        changes: dict[str, Any] = job.params["set"]
        if protocol.number is None:
            return "failed", "not received yet"
        if all(getattr(protocol, key) == value for key, value in changes.items()):
            return "skipped", "already so"
        for key, value in changes.items():
            setattr(protocol, key, value)
        return "done", ", ".join(f"{k}={v}" for k, v in changes.items())


class BulkMail(_Bulk):
    name = "bulk_mail"
    title = N_("Bulk mail")
    unit = "mail"
    Params = MailParams

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: MailParams = params
        ids = list(dict.fromkeys(p.protocol_ids))
        return Prepared(
            params={"protocol_ids": ids, "template": p.template},
            data_version=_version(ids),
            total=len(ids),
            summary={"protocols": len(ids), "template": p.template},
        )

    def apply(self, session: Any, job: Job, protocol: Protocol) -> tuple[str, str]:
        template = job.params["template"]
        key = f"bulk_mail:{template}:{protocol.id}"
        if session.scalar(
            sa.select(sa.func.count()).select_from(OutboxItem).where(OutboxItem.key == key)
        ):
            return "skipped", "sent before"
        if protocol.number is None:
            return "failed", "not received yet"
        vet = protocol.veterinarian
        subject_text, body_text = TEMPLATES[template]
        with force_locale(current_app.config["LAB_LOCALE"]):
            values = {
                "name": vet.name,
                "number": protocol.number,
                "animal": protocol.animal_id,
                "species": protocol.species,
                "received": format_date(protocol.received_on, "long")
                if protocol.received_on
                else "",
                "lab": current_app.config["LAB_NAME"],
            }
            subject, body = gettext(subject_text, **values), gettext(body_text, **values)
        outbox.add(
            session,
            "mail",
            key,
            mail.payload(
                to=vet.email, subject=subject, body=body, key=f"bulk-{template}-{protocol.id}"
            ),
            job_id=job.id,
        )
        return "done", vet.email
