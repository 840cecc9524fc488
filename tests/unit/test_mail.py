"""Mail: SMTP_URL's three schemes against a real SMTP server (aiosmtpd; TLS with a test CA from
trustme), credentials, and how a refusal is taken: 4xx and a server that is down are tried
again later, 5xx gives up at once, a broken SMTP_URL stops the service with the reason."""

from __future__ import annotations

import email
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import app_config
from webapp import create_app, mail
from webapp.db import write_txn
from webapp.errors import PermanentError
from webapp.extensions import db
from webapp.jobs import outbox
from webapp.models import OutboxItem
from workers.waiting import free_port


class Box:
    def __init__(self, answer: str = "250 OK") -> None:
        self.answer = answer
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer.startswith("250"):
            self.messages.append(email.message_from_bytes(envelope.content))
        return self.answer


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"lab", b"p@ss w")
    return AuthResult(success=ok)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our client trusts the test CA (ssl.create_default_context reads SSL_CERT_FILE)."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


def serve(box: Box, **kwargs: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(box, hostname="localhost", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def send_one(app: Any, url: str) -> None:
    app.config["SMTP_URL"] = url
    with app.test_request_context():
        mail.deliver(
            mail.build(
                mail.payload(to="vet@example.com", subject="Informe", body="Hola", key="t-1")
            )
        )


class TestSmtpUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("smtp://mail.example.com", ("smtp", "mail.example.com", 25, None, None)),
            ("smtps://u:p@mail.example.com", ("smtps", "mail.example.com", 465, "u", "p")),
            ("smtp+starttls://a%40b:p%20w@mx:2525", ("smtp+starttls", "mx", 2525, "a@b", "p w")),
        ],
    )
    def test_the_three_schemes_with_their_ports_and_credentials(self, url, expected):
        server = mail.parse_smtp_url(url)
        assert (
            server.scheme,
            server.host,
            server.port,
            server.username,
            server.password,
        ) == expected
        assert f":{server.password}@" not in str(server)

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("smtpx://mail.example.com", "scheme must be one of"),
            ("mail.example.com:25", "scheme must be one of"),
            ("smtp://:25", "host name is missing"),
            ("smtp://mail.example.com:port", "port is not a number"),
        ],
    )
    def test_a_broken_url_stops_the_service_with_the_reason_and_no_password(
        self, tmp_path, url, says
    ):
        with pytest.raises(mail.MailConfigError, match=says) as refused:
            create_app(app_config(tmp_path, SMTP_URL=url.replace("//", "//u:secret@", 1)))
        assert "secret" not in str(refused.value)


class TestDelivery:
    def test_plain_smtp_with_a_login(self, app):
        box = Box()
        for port in serve(box, auth_require_tls=False, authenticator=check_login):
            send_one(app, f"smtp://lab:p%40ss%20w@localhost:{port}")
        assert [m["To"] for m in box.messages] == ["vet@example.com"]
        assert box.messages[0]["Message-ID"] == "<t-1@localhost>"

    def test_starttls_with_a_login(self, app, server_ctx, trusted):
        box = Box()
        for port in serve(
            box, tls_context=server_ctx, require_starttls=True, authenticator=check_login
        ):
            send_one(app, f"smtp+starttls://lab:p%40ss%20w@localhost:{port}")
        assert len(box.messages) == 1

    def test_smtps(self, app, server_ctx, trusted):
        box = Box()
        for port in serve(box, ssl_context=server_ctx):
            send_one(app, f"smtps://localhost:{port}")
        assert len(box.messages) == 1

    def test_a_5xx_refusal_is_permanent_and_a_4xx_one_is_not(self, app):
        for port in serve(Box("550 5.1.1 No such user")):
            with pytest.raises(PermanentError) as refused:
                send_one(app, f"smtp://localhost:{port}")
            assert refused.value.msg.params["status"] == 550
        for port in serve(Box("451 4.3.0 Try later")):
            with pytest.raises(Exception) as later:
                send_one(app, f"smtp://localhost:{port}")
            assert not isinstance(later.value, PermanentError)


class TestOutboxOutcome:
    def item(self, app: Any) -> int:
        with app.app_context(), write_txn() as session:
            return outbox.add(
                session,
                "mail",
                "k-1",
                mail.payload(to="vet@example.com", subject="s", body="b", key="k-1"),
            ).id

    def test_a_refusal_for_good_fails_the_item_at_once(self, app):
        item_id = self.item(app)
        for port in serve(Box("554 5.7.1 Rejected")):
            app.config["SMTP_URL"] = f"smtp://localhost:{port}"
            with app.app_context():
                assert outbox.dispatch(item_id) == "failed"
                row = db.session.get(OutboxItem, item_id)
                assert row.attempts == 1 and "554" in row.last_error

    def test_a_server_that_is_down_is_tried_again_later(self, app):
        item_id = self.item(app)
        app.config["SMTP_URL"] = f"smtp://localhost:{free_port()}"
        with app.app_context():
            assert outbox.dispatch(item_id) == "pending"
            row = db.session.get(OutboxItem, item_id)
            assert row.attempts == 1 and "Connection refused" in row.last_error
            assert outbox.dispatch(item_id) is None  # not due yet: the backoff holds it

    def test_without_smtp_the_mail_is_one_eml_file_however_often_it_is_sent(self, app):
        with app.test_request_context():
            item = mail.payload(to="vet@example.com", subject="s", body="b", key="report-1-v1")
            for _ in range(2):
                mail.deliver(mail.build(item))
        files = list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
        assert [f.name for f in files] == ["report-1-v1@localhost.eml"]
