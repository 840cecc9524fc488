"""Receivers of the transitions' signal, each in the transition's own transaction: the kind's
hook (a report's mail, a work order's new file) and the "ready" mail of a job nobody watched."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from flask_babel import force_locale, gettext
from sqlalchemy.orm import Session

from webapp import documents
from webapp.jobs import outbox, watch
from webapp.jobs.transitions import job_changed
from webapp.models import Job, Origin, User, utcnow

log = logging.getLogger(__name__)


def _to_kind(
    name: str,
    *,
    session: Session,
    job_id: str,
    kind: str,
    old: str | None,
    new: str,
    parent_id: str | None = None,
    **_: Any,
) -> None:
    if parent_id is not None:
        return  # a chunk: its kind hears of the job once, from the parent's own transitions
    document = documents.get(kind)
    if document is not None:
        document.on_transition(session, name, job_id, old, new)


def _ready_mail(
    name: str,
    *,
    session: Session,
    job_id: str,
    parent_id: str | None = None,
    owner_id: int | None = None,
    origin: str | None = None,
    created_at: Any = None,
    **_: Any,
) -> None:
    """A job ends done after nobody polled its page for READY_MAIL_IDLE_S: mail its owner the
    link, once (the outbox key), unless they turned these mails off. Decided from what the
    signal carries: most finishes (short jobs, system jobs) read nothing more."""
    if name != "finish" or parent_id is not None or owner_id is None:
        return
    if origin not in (Origin.USER, Origin.API):
        return
    idle = timedelta(seconds=current_app.config["READY_MAIL_IDLE_S"])
    if created_at is None or utcnow() - created_at < idle:
        return  # a short job: whoever started it is still there
    owner = session.get(User, owner_id)
    if owner is None or not owner.ready_mail or watch.watched(job_id):
        return
    job = session.get(Job, job_id, populate_existing=True)  # as the transition left it
    if job is None:
        return
    kind = documents.get(job.kind)
    title = kind.title if kind else job.kind
    link = f"{current_app.config['SITE_URL']}/jobs/{job.id}"
    from webapp import mail

    with force_locale(owner.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        subject = gettext("Ready: %(title)s", title=gettext(title))
        body = gettext(
            "Hello %(name)s,\n\nyour %(title)s (%(file)s) is ready:\n%(link)s\n\n"
            "You get this mail because the job's page was not open when it finished. "
            "You can turn these mails off on your account page.",
            name=owner.display_name,
            title=gettext(title),
            file=job.file_name or "",
            link=link,
        )
    outbox.add(
        session,
        "mail",
        f"ready:{job.id}",
        mail.payload(to=owner.email, subject=subject, body=body, key=f"job-{job.id}-ready"),
        job_id=job.id,
    )
    log.info("job %s: nobody watching; ready mail to %s", job.id, owner.email)


def init_app(app: Flask) -> None:
    # blinker keeps one receiver per function: connecting again (one app per test) is a no-op.
    job_changed.connect(_to_kind, weak=False)
    job_changed.connect(_ready_mail, weak=False)
    from webapp.jobs import batches

    batches.init_app()
