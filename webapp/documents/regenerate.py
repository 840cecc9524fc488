"""`regenerate`: one bulk job over many documents of a kind (DESIGN §4 kinds table), for an
admin after a template or data change. Each document becomes a job of its own in the bulk
queue (staff jobs go first); unchanged ones (same input, file present) are skipped unless
`force`; the bulk job counts `items` {done, failed, skipped} and ends with a CSV report of
every document it made and how that ended."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from webapp import documents
from webapp.documents.base import DocumentKind, FieldProblem, Part, Prepared, RenderContext
from webapp.extensions import db
from webapp.messages import N_
from webapp.models import Job, User


class ChangedSince(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changed_since: date | datetime


class RegenerateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=40)
    scope: Literal["all", "stale"] | ChangedSince = "stale"
    force: bool = False

    @field_validator("kind")
    @classmethod
    def _regenerable(cls, value: str) -> str:
        if value not in regenerable():
            raise FieldProblem("not_regenerable", choices=", ".join(regenerable()))
        return value


def regenerable() -> list[str]:
    """The kinds whose documents can be made again in bulk."""
    found = []
    for name in documents.names():
        kind = documents.get(name)
        if kind is not None and type(kind).documents is not DocumentKind.documents:
            found.append(name)
    return found


def scope_of(params: dict[str, Any]) -> Any:
    scope = params["scope"]
    if isinstance(scope, dict):
        moment = scope["changed_since"]
        value = (
            datetime.fromisoformat(moment)
            if "T" in moment
            else datetime.combine(date.fromisoformat(moment), time())
        )
        return value.replace(tzinfo=None)
    return scope


class Regenerate(DocumentKind):
    name = "regenerate"
    title = N_("Regeneration")
    unit = "document"
    suffix = ".csv"
    media_type = "text/csv"
    roles = frozenset({"admin"})
    Params = RegenerateParams
    fans_out = True
    back_endpoint = "admin.index"
    back_label = N_("Back to monitoring")

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        p: RegenerateParams = params
        scope: Any = (
            p.scope.model_dump(mode="json") if isinstance(p.scope, ChangedSince) else p.scope
        )
        normalised = {"kind": p.kind, "scope": scope, "force": p.force}
        target = documents.get(p.kind)
        assert target is not None
        found = target.documents(db.session(), scope_of(normalised)) or []
        return Prepared(
            params=normalised,
            # Never the same twice by accident: every request is a fresh look at the documents.
            data_version=f"{len(found)}:{datetime.now().isoformat()}",
            total=len(found),
            summary={"kind": p.kind, "scope": scope, "force": p.force, "documents": len(found)},
        )

    def file_name(self, job: Job) -> str:
        return f"regeneration_{job.params['kind']}_{job.created_at:%Y-%m-%d_%H%M}.csv"

    def children(self, job: Job) -> list[tuple[str, dict[str, Any]]]:
        target = documents.get(job.params["kind"])
        assert target is not None
        found = target.documents(db.session(), scope_of(job.params)) or []
        db.session.commit()
        return [(target.name, params) for params in found]

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        raise NotImplementedError("a bulk job renders no file of its own; see merge")

    def merge(self, job: Job, ctx: RenderContext, parts: list[Path], out: Path) -> None:
        """The report: every document made, with its state and error; failures first."""
        rows = db.session.execute(
            sa.select(
                Job.id, Job.subject, Job.status, Job.error_code, Job.error_params, Job.file_name
            )
            .where(Job.batch_id == job.id)
            .order_by(sa.case((Job.status == "failed", 0), else_=1), Job.subject)
        ).all()
        from webapp.messages import Msg

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["document", "status", "file", "error", "job"])
        for row in rows:
            error = Msg(row.error_code, row.error_params or {}).english() if row.error_code else ""
            writer.writerow([row.subject or "", row.status, row.file_name or "", error, row.id])
        skipped = (job.items or {}).get("skipped", 0)
        writer.writerow([f"({skipped} unchanged documents skipped)", "skipped", "", "", ""])
        out.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")
