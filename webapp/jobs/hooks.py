"""Kinds' transition hooks: each transition's signal reaches its kind, in the same transaction."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from webapp import documents
from webapp.jobs.transitions import job_changed


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


def init_app(app: Flask) -> None:
    # blinker keeps one receiver per function: connecting again (one app per test) is a no-op.
    job_changed.connect(_to_kind, weak=False)
