"""Admin pages: the mails the service sent or is sending (the outbox, and the `.eml` files
written when no SMTP_URL is set)."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template, send_file
from flask.typing import ResponseReturnValue

from webapp.auth import admin_required
from webapp.extensions import db
from webapp.models import OutboxItem

bp = Blueprint("admin", __name__, url_prefix="/admin")
EML = re.compile(r"^[A-Za-z0-9@._\-]+\.eml$")


def _eml_files() -> list[tuple[str, int, float]]:
    folder = Path(current_app.config["OUTBOX_DIR"])
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if EML.match(path.name) and not path.name.startswith("."):
            stat = path.stat()
            found.append((path.name, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda f: f[2], reverse=True)[:200]


@bp.get("/mails")
@admin_required
def mails() -> ResponseReturnValue:
    """Every mail in the outbox (pending, sent, given up) and, without SMTP, the files."""
    items = db.session.scalars(
        sa.select(OutboxItem)
        .where(OutboxItem.action == "mail")
        .order_by(OutboxItem.created_at.desc())
        .limit(200)
    ).all()
    return render_template(
        "admin/mails.html",
        items=items,
        files=_eml_files(),
        smtp=bool(current_app.config.get("SMTP_URL")),
    )


@bp.get("/mails/files/<name>")
@admin_required
def mail_file(name: str) -> ResponseReturnValue:
    if not EML.match(name) or name.startswith("."):
        abort(404)
    path = Path(current_app.config["OUTBOX_DIR"]) / name
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="message/rfc822", as_attachment=True, download_name=name)
