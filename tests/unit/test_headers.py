"""Headers every answer carries (issue 9): no sniffing, no framing, a referrer policy; and a
login for an unknown address costs a password check like a wrong password does."""

from __future__ import annotations

import pytest

from tests.conftest import add_user


@pytest.mark.parametrize("path", ["/login", "/api/v1/jobs", "/healthz", "/no-such-page"])
def test_every_answer_forbids_sniffing_and_framing(app, client, path):
    answer = client.get(path)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Referrer-Policy"] == "same-origin"


def test_a_page_with_its_own_referrer_policy_keeps_it(app, client):
    from webapp.db import write_txn
    from webapp.lab.demo import seed_lab
    from webapp.models import Protocol

    with app.app_context():
        seed_lab(1)
        with write_txn() as session:
            external = session.get(Protocol, 1).external_id
    answer = client.get(f"/protocols/public/{external}/")
    assert answer.status_code == 200 and answer.headers["Referrer-Policy"] == "no-referrer"


def test_an_unknown_address_is_checked_like_a_wrong_password(app, client, monkeypatch):
    from webapp.views import auth

    with app.app_context():
        add_user("staff@example.com", "pw-staff")
    checked: list[str] = []
    real = auth.check_password_hash
    monkeypatch.setattr(auth, "check_password_hash", lambda h, p: checked.append(p) or real(h, p))
    answer = client.post("/login", data={"email": "nobody@example.com", "password": "guess"})
    assert answer.status_code == 200 and b"Wrong email or password" in answer.data
    assert checked == ["guess"]  # the same hashing work as for an existing account
