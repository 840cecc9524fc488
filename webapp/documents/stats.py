"""`stats_daily` and `stats_weekly`: the lab's statistics of a day or an ISO week as a PDF
(counts by species and analysis, turnaround times, a chart), started by the schedules
(webapp/schedules.py) or an admin, and mailed to the admins when done."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, gettext
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from webapp import mail
from webapp.documents.base import DocumentKind, Part, Prepared, RenderContext
from webapp.errors import InvalidParams
from webapp.extensions import db
from webapp.jobs import outbox
from webapp.lab import stats
from webapp.messages import N_
from webapp.models import Artifact, Job, JobStatus, Role, User


class PeriodParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    period: str = Field(max_length=12)


class StatsKind(DocumentKind):
    unit = "page"
    roles = frozenset({"admin", "system"})
    Params = PeriodParams
    back_endpoint = "admin.stats"
    back_label = N_("Back to the statistics")
    period_unit = "day"

    def parse(self, raw: Any) -> BaseModel:
        params = super().parse(raw)
        try:
            period = stats.Period.parse(params.period)  # type: ignore[attr-defined]
        except ValueError:
            period = None
        if period is None or period.kind != self.period_unit:
            code = "period_day" if self.period_unit == "day" else "period_week"
            raise InvalidParams.field("period", code)
        return params

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        period = stats.Period.parse(params.period)
        return Prepared(
            params={"period": period.label},
            data_version=stats.data_version(db.session(), period),
            total=1,
            summary={"period": period.label},
        )

    def subject(self, params: dict[str, Any]) -> str | None:
        return f"{self.name}:{params['period']}"

    def file_name(self, job: Job) -> str:
        return f"{self.name}_{job.params['period']}.pdf"

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        config = current_app.config
        period = stats.Period.parse(job.params["period"])
        ctx.progress(0, "drawing_pages", force=True)
        figures = stats.compute(db.session(), period, config["TZ"])
        with force_locale(config["LAB_LOCALE"]):
            stats.render_stats(
                figures,
                out,
                lab_name=config["LAB_NAME"],
                lab_address=config["LAB_ADDRESS"],
                generated=job.created_at.replace(tzinfo=UTC).astimezone(ZoneInfo(config["TZ"])),
            )
        ctx.progress(1, "writing_file", force=True)

    def on_transition(
        self, session: Session, name: str, job_id: str, old: str | None, new: str
    ) -> None:
        """Done: the report goes to every admin, once per period (the outbox key)."""
        if new != JobStatus.DONE:
            return
        job = session.get(Job, job_id, populate_existing=True)
        artifact = session.get(Artifact, job.artifact_id) if job and job.artifact_id else None
        if job is None or artifact is None:
            return
        admins = session.scalars(sa.select(User.email).where(User.role == Role.ADMIN)).all()
        with force_locale(current_app.config["LAB_LOCALE"]):
            subject = gettext(
                "%(title)s %(period)s", title=gettext(self.title), period=job.params["period"]
            )
            body = gettext(
                "Attached are the statistics of %(period)s of %(lab)s.",
                period=job.params["period"],
                lab=current_app.config["LAB_NAME"],
            )
        for email in admins:
            outbox.add(
                session,
                "mail",
                f"{self.name}:{job.params['period']}:{email}:{artifact.sha256[:12]}",
                mail.payload(
                    to=email,
                    subject=subject,
                    body=body,
                    key=f"{self.name}-{job.params['period']}-{email}",
                    attachments=[
                        {
                            "path": artifact.path,
                            "name": job.file_name or "stats.pdf",
                            "type": "application/pdf",
                        }
                    ],
                ),
                job_id=job.id,
            )


class StatsDaily(StatsKind):
    name = "stats_daily"
    title = N_("Daily statistics")
    period_unit = "day"


class StatsWeekly(StatsKind):
    name = "stats_weekly"
    title = N_("Weekly statistics")
    period_unit = "week"
