"""`report_final`: a DRAFT report becomes FINAL — its PDF rendered and stored with its sha256,
the report marked FINAL and the veterinarian's mail written to the outbox, all in the one
transaction that finishes the job (DESIGN §4a). The mail carries the PDF and a Message-ID
fixed per report version, so it reaches the veterinarian once whatever is retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, format_date, gettext
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from webapp import mail
from webapp.documents.base import DocumentKind, Part, Prepared, RenderContext
from webapp.documents.potting_lots import MAX_ID
from webapp.errors import Conflict, InvalidParams, PermanentError
from webapp.extensions import db
from webapp.jobs import outbox
from webapp.lab import pdfs
from webapp.lab.records import file_safe, finished_job, local_date, pin
from webapp.messages import N_
from webapp.models import (
    AnalysisType,
    Artifact,
    Job,
    JobStatus,
    Protocol,
    ProtocolStatus,
    Report,
    ReportStatus,
    User,
    utcnow,
)

ANALYSIS_NAMES = {
    AnalysisType.CYTOLOGY.value: N_("Cytology"),
    AnalysisType.HISTOPATHOLOGY.value: N_("Histopathology"),
}


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    report_id: int = Field(ge=1, le=MAX_ID)


def report_data(report: Report, report_date: Any) -> pdfs.ReportData:
    """What the PDF prints (texts in the current locale: the caller forces the lab's)."""
    protocol, vet = report.protocol, report.protocol.veterinarian
    config = current_app.config
    return pdfs.ReportData(
        lab_name=config["LAB_NAME"],
        lab_address=config["LAB_ADDRESS"],
        protocol_number=protocol.number or "",
        received_on=protocol.received_on or report_date,
        report_date=report_date,
        veterinarian=vet.name,
        clinic=vet.clinic,
        veterinarian_email=vet.email,
        animal_id=protocol.animal_id,
        species=protocol.species,
        analysis=gettext(ANALYSIS_NAMES[protocol.analysis_type]),
        clinical_history=report.clinical_history,
        cassettes=tuple(
            pdfs.Cassette(c.get("cassette", ""), c.get("tissue", ""), c.get("observation", ""))
            for c in report.cassettes
        ),
        diagnosis=report.diagnosis,
        histopathologist=report.histopathologist,
        version=report.version,
    )


class ReportFinal(DocumentKind):
    name = "report_final"
    title = N_("Final report")
    unit = "page"
    roles = frozenset({"staff", "admin"})
    Params = ReportParams
    back_endpoint = "lab.reports"
    back_label = N_("Back to the reports")

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: ReportParams = params
        row = db.session.execute(
            sa.select(
                Report.status,
                Report.version,
                Report.updated_at,
                Report.cassettes,
                Report.diagnosis,
                Report.clinical_history,
                Protocol.number,
            )
            .join(Protocol, Protocol.id == Report.protocol_id)
            .where(Report.id == p.report_id)
        ).first()
        if row is None:
            raise InvalidParams.field("report_id", "unknown_report", id=p.report_id)
        if row.status != ReportStatus.DRAFT:
            raise Conflict("report_not_draft", number=row.number or "")
        if row.number is None:
            raise InvalidParams.field("report_id", "protocol_not_received", id=p.report_id)
        text = len(row.diagnosis) + len(row.clinical_history)
        text += sum(len(c.get("observation", "")) for c in row.cassettes)
        return Prepared(
            params={"report_id": p.report_id},
            data_version=f"{row.version}|{row.updated_at.isoformat()}",
            total=pdfs.estimate_report_pages(len(row.cassettes), text),
            summary={"number": row.number, "version": row.version, "report_id": p.report_id},
        )

    def subject(self, params: dict[str, Any]) -> str | None:
        return f"report:{params['report_id']}"

    def file_name(self, job: Job) -> str:
        number = file_safe(job.summary.get("number", str(job.params["report_id"])))
        return f"report_{number}_v{job.summary.get('version', 1)}.pdf"

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        report = db.session.get(Report, job.params["report_id"])
        if report is None:
            raise PermanentError("report_gone", id=job.params["report_id"])
        if report.status != ReportStatus.DRAFT:
            raise PermanentError("report_not_draft", number=report.protocol.number or "")
        with force_locale(current_app.config["LAB_LOCALE"]):
            data = report_data(report, local_date(job.created_at))
            ctx.progress(0, "drawing_pages", force=True)
            pages = pdfs.render_report(
                data, out, lambda done: ctx.progress(min(done, job.progress_total), "drawing_pages")
            )
        ctx.progress(min(pages, job.progress_total), "writing_file", force=True)

    def on_transition(
        self, session: Session, name: str, job_id: str, old: str | None, new: str
    ) -> None:
        """Done: the report is FINAL with this file, and its mail is in the outbox — together."""
        if new != JobStatus.DONE:
            return
        job = finished_job(session, job_id)
        report = session.get(Report, job.params["report_id"], populate_existing=True)
        artifact = session.get(Artifact, job.artifact_id) if job.artifact_id else None
        if report is None or report.status != ReportStatus.DRAFT or artifact is None:
            return
        report.status = ReportStatus.FINAL.value
        report.artifact_id = artifact.id
        report.pdf_sha256 = artifact.sha256
        report.finalised_by_id = job.owner_id
        report.finalised_at = utcnow()
        report.protocol.status = ProtocolStatus.REPORTED.value
        pin(session, job.artifact_id)
        outbox.add(
            session,
            "mail",
            f"report:{report.id}:v{report.version}",
            report_mail(report, job, artifact),
            job_id=job.id,
        )


def report_mail(report: Report, job: Job, artifact: Artifact) -> dict[str, Any]:
    """The veterinarian's mail, in the lab's language, with the PDF attached."""
    protocol, vet = report.protocol, report.protocol.veterinarian
    with force_locale(current_app.config["LAB_LOCALE"]):
        subject = gettext(
            "Pathology report %(number)s — %(animal)s",
            number=protocol.number,
            animal=protocol.animal_id,
        )
        body = gettext(
            "Dear %(name)s,\n\nattached is the final report of protocol %(number)s "
            "(%(animal)s, %(species)s), received on %(received)s.\n\n"
            "Diagnosis: %(diagnosis)s\n\nKind regards,\n%(pathologist)s\n%(lab)s",
            name=vet.name,
            number=protocol.number,
            animal=protocol.animal_id,
            species=protocol.species,
            received=format_date(protocol.received_on, "long") if protocol.received_on else "",
            diagnosis=report.diagnosis,
            pathologist=report.histopathologist,
            lab=current_app.config["LAB_NAME"],
        )
    return mail.payload(
        to=vet.email,
        subject=subject,
        body=body,
        key=f"report-{report.id}-v{report.version}",
        attachments=[
            {
                "path": job.artifact.path,
                "name": job.file_name or "report.pdf",
                "type": "application/pdf",
            }
        ]
        if job.artifact
        else [],
    )
