"""Mail: built from an outbox item, sent by SMTP (`SMTP_URL`) or written as an `.eml` file.

`SMTP_URL` is `smtp://[user:pass@]host[:port]` (plain, port 25), `smtp+starttls://` (STARTTLS,
587) or `smtps://` (TLS from the start, 465); unset, every mail is written to
`$PRESSROOM_DATA/outbox/<Message-ID>.eml`, where the admin mail page lists it.

A mail item is sent by the `mail` outbox handler, so it goes once: written in the transaction
that made it due, retried with backoff when the server refuses for now (4xx) or cannot be
reached, given up at once when it refuses for good (5xx). Its `Message-ID` is fixed by the
caller (a report's is the same for every send of one version), so a resend after a crash
between the server's acceptance and our commit is recognisable as the same mail — and an
`.eml` file of the same mail is overwritten, not doubled.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

from webapp.errors import PermanentError
from webapp.jobs import artifacts, outbox

log = logging.getLogger(__name__)

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TIMEOUT_S = 30


class MailConfigError(ValueError):
    """A broken `SMTP_URL` or `MAIL_FROM`: the service refuses to start and says why."""


@dataclass(frozen=True)
class SmtpServer:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # for logs: never the password
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpServer:
    """`SMTP_URL` → server; a clear `MailConfigError` for anything we cannot send with."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise MailConfigError(
            f"SMTP_URL {_redacted(url)!r}: the scheme must be one of "
            f"{', '.join(s + '://' for s in SCHEMES)} (e.g. smtp+starttls://user:pass@mail.example.com:587)"
        )
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise MailConfigError(f"SMTP_URL {_redacted(url)!r}: the port is not a number") from None
    if not parts.hostname:
        raise MailConfigError(f"SMTP_URL {_redacted(url)!r}: a host name is missing")
    return SmtpServer(
        scheme,
        parts.hostname,
        port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def _redacted(url: str) -> str:
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def mail_domain(config: dict[str, Any]) -> str:
    return urlsplit(config["SITE_URL"]).hostname or "localhost"


def mail_from(config: dict[str, Any]) -> str:
    return config.get("MAIL_FROM") or f"pressroom@{mail_domain(config)}"


def message_id(key: str) -> str:
    """A fixed Message-ID for one mail ("report-17-v1"): every send of it carries the same."""
    safe = re.sub(r"[^A-Za-z0-9.\-]", "-", key)
    return f"<{safe}@{mail_domain(current_app.config)}>"


def payload(
    *,
    to: str,
    subject: str,
    body: str,
    key: str,
    attachments: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """An outbox item's payload: what to send, with attachments as artifact paths."""
    return {
        "to": to,
        "subject": subject,
        "body": body,
        "message_id": message_id(key),
        "attachments": attachments or [],
    }


def build(item: dict[str, Any]) -> EmailMessage:
    config = current_app.config
    msg = EmailMessage()
    msg["From"] = mail_from(config)
    msg["To"] = " ".join(str(item["to"]).split())
    msg["Subject"] = " ".join(str(item["subject"]).split())  # never a line break in a header
    msg["Message-ID"] = item["message_id"]
    msg["Date"] = formatdate(localtime=False)
    msg.set_content(item["body"])
    for attachment in item.get("attachments", []):
        try:  # from the store (the artifact folder, or S3)
            data = artifacts.store().read_bytes(attachment["path"])
        except FileNotFoundError:
            raise PermanentError("mail_attachment_missing", name=attachment["name"]) from None
        kind = attachment.get("type") or mimetypes.guess_type(attachment["name"])[0]
        main, _, sub = (kind or "application/octet-stream").partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=attachment["name"])
    return msg


def deliver(msg: EmailMessage) -> str:
    """Send `msg` (SMTP) or write it to the outbox folder; → where it went, for the log."""
    url = current_app.config.get("SMTP_URL")
    if not url:
        return str(write_eml(msg))
    server = parse_smtp_url(url)
    try:
        with _connect(server) as smtp:
            if server.username:
                smtp.login(server.username, server.password or "")
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            raise PermanentError("mail_refused", status=codes[0], reason=_reason(exc)) from exc
        raise
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError):
            raise PermanentError("mail_refused", status=exc.smtp_code, reason=_reason(exc)) from exc
        raise  # 4xx (and a login refused: a setting to fix, then the retry gets through)
    return str(server)


def _reason(exc: Exception) -> str:
    error = getattr(exc, "smtp_error", b"") or b""
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
    return (text or str(exc))[:300]


def _connect(server: SmtpServer) -> smtplib.SMTP:
    if server.scheme == "smtps":
        return smtplib.SMTP_SSL(
            server.host, server.port, timeout=TIMEOUT_S, context=ssl.create_default_context()
        )
    smtp = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_S)
    if server.scheme == "smtp+starttls":
        smtp.starttls(context=ssl.create_default_context())
    return smtp


def outbox_dir() -> Path:
    return Path(current_app.config["OUTBOX_DIR"])


def write_eml(msg: EmailMessage) -> Path:
    """The mail as `<Message-ID>.eml`, written whole (temp file, then rename): a second write
    of the same mail replaces the first."""
    folder = outbox_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9@.\-]", "_", str(msg["Message-ID"]).strip("<>")) + ".eml"
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.write_bytes(msg.as_bytes())
    os.replace(tmp, folder / name)
    return folder / name


@outbox.handler("mail")
def send_mail(item: dict[str, Any]) -> None:
    try:
        message = build(item)
    except (ValueError, TypeError) as exc:  # a mail that cannot be written: no retry helps
        raise PermanentError("mail_unbuildable", reason=str(exc)[:200]) from exc
    where = deliver(message)
    log.info("mail %s to %s sent (%s)", item["message_id"], item["to"], where)


def init_app(app: Flask) -> None:
    """Refuse to start with a broken SMTP_URL, naming what is wrong."""
    if app.config.get("SMTP_URL"):
        parse_smtp_url(app.config["SMTP_URL"])
