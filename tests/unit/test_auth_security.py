"""Logins and sessions that can be defended (issue 9, item 4): failed logins throttled per
account and per address, no account oracle, sessions revoked on logout and on a new password,
a remember-me cookie that rotates and can be revoked, API tokens with a name, last use and
expiry that reads never write, and cookie flags."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask

import webapp.auth
from tests.conftest import add_user, job_in, wait_for
from webapp.auth import REMEMBER_COOKIE, REMEMBER_GRACE_S, hash_token
from webapp.extensions import db
from webapp.models import ApiToken, RememberToken, User, utcnow

LOGIN = "/login"
RIGHT = {"email": "staff@example.com", "password": "pw-staff"}
WRONG = {"email": "staff@example.com", "password": "wrong"}


@pytest.fixture
def staff_app(app):
    with app.app_context():
        add_user()
        add_user("other@example.com", "pw-other")
    return app


def cookie(client, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def logged_in(client) -> bool:
    response = client.get("/jobs/")
    return response.status_code == 200


def to_login(response) -> bool:
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == LOGIN


@contextmanager
def sql_statements(app) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs inside the block."""
    statements: list[str] = []

    def listen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)


def writes(statements: list[str]) -> list[str]:
    return [
        s
        for s in statements
        if s.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")
    ]


def three_fails_per_address(make_app: Callable[..., Flask], **config: object) -> Flask:
    """An app whose address limit is 3 failed logins in 15 minutes, with the staff user."""
    app = make_app(LOGIN_FAILS_PER_ADDRESS="3 per 15 minutes", **config)
    with app.app_context():
        add_user()
    return app


class TestLoginThrottle:
    """LOGIN_FAILS_PER_ACCOUNT (5 per 15 minutes: every attempt, counted before its check, a
    success clears it) and LOGIN_FAILS_PER_ADDRESS (20 failed attempts); past the limit even the
    right password is 429 until the window passes."""

    def test_the_right_password_after_a_few_wrong_ones_works(self, staff_app):
        client = staff_app.test_client()
        for _ in range(4):
            assert client.post(LOGIN, data=WRONG).status_code == 200
        assert client.post(LOGIN, data=RIGHT).status_code == 302

    def test_successful_logins_and_the_form_itself_never_count(self, staff_app):
        client = staff_app.test_client()
        for _ in range(8):
            assert client.get(LOGIN).status_code == 200
            assert client.post(LOGIN, data=RIGHT).status_code == 302
            client.post("/logout")
        assert client.post(LOGIN, data=RIGHT).status_code == 302

    def test_a_successful_login_starts_the_accounts_count_again(self, staff_app):
        client = staff_app.test_client()
        for _ in range(4):
            client.post(LOGIN, data=WRONG)
        assert client.post(LOGIN, data=RIGHT).status_code == 302
        client.post("/logout")
        assert [client.post(LOGIN, data=WRONG).status_code for _ in range(6)] == [200] * 5 + [429]

    def test_a_successful_login_leaves_the_addresss_count(self, make_app):
        app = three_fails_per_address(make_app)
        client = app.test_client()
        for _ in range(2):
            client.post(LOGIN, data=WRONG)
        assert client.post(LOGIN, data=RIGHT).status_code == 302
        client.post("/logout")
        client.post(LOGIN, data={"email": "guess@example.com", "password": "x"})
        assert client.post(LOGIN, data=RIGHT).status_code == 429

    def test_a_post_with_an_empty_field_counts_against_the_address_too(self, make_app):
        """Else one address could keep any number of accounts locked: five empty passwords
        each, never a failure of its own."""
        app = three_fails_per_address(make_app)
        client = app.test_client()
        for n in range(3):
            answer = client.post(LOGIN, data={"email": f"victim{n}@example.com", "password": ""})
            assert answer.status_code == 200
        assert client.post(LOGIN, data=RIGHT).status_code == 429

    def test_past_the_limit_even_the_right_password_is_a_429_page_saying_when(self, staff_app):
        client = staff_app.test_client()
        for _ in range(5):
            assert client.post(LOGIN, data=WRONG).status_code == 200
        response = client.post(LOGIN, data=RIGHT)
        assert response.status_code == 429
        retry_after = int(response.headers["Retry-After"])
        assert 14 * 60 < retry_after <= 15 * 60
        text = response.get_data(as_text=True)
        assert "Too many failed logins" in text and "Try again in 15 minutes." in text
        assert not logged_in(client)

    def test_the_limit_is_per_account(self, staff_app):
        client = staff_app.test_client()
        for _ in range(5):
            client.post(LOGIN, data=WRONG)
        assert client.post(LOGIN, data=RIGHT).status_code == 429
        other = {"email": "Other@Example.com", "password": "pw-other"}
        assert client.post(LOGIN, data=other).status_code == 302

    def test_the_email_counts_whatever_its_case_and_spaces(self, staff_app):
        client = staff_app.test_client()
        for email in ("staff@example.com", "STAFF@example.com", " Staff@Example.com ") * 2:
            client.post(LOGIN, data={"email": email, "password": "wrong"})
        assert client.post(LOGIN, data=RIGHT).status_code == 429

    def test_the_limit_is_per_address_across_accounts(self, make_app):
        app = three_fails_per_address(make_app)
        client = app.test_client()
        for n in range(3):
            client.post(LOGIN, data={"email": f"guess{n}@example.com", "password": "x"})
        assert client.post(LOGIN, data=RIGHT).status_code == 429
        elsewhere = app.test_client()
        response = elsewhere.post(LOGIN, data=RIGHT, environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert response.status_code == 302

    def test_behind_a_trusted_proxy_the_address_is_the_clients(self, make_app):
        # All requests come from the balancer (one REMOTE_ADDR); X-Forwarded-For tells them apart.
        app = three_fails_per_address(make_app, TRUSTED_PROXIES=1)
        balancer = {"REMOTE_ADDR": "10.0.0.2"}
        guesser = app.test_client()
        for n in range(3):
            guesser.post(
                LOGIN,
                data={"email": f"guess{n}@example.com", "password": "x"},
                environ_base=balancer,
                headers={"X-Forwarded-For": "198.51.100.9"},
            )
        staff = app.test_client()
        response = staff.post(
            LOGIN, data=RIGHT, environ_base=balancer, headers={"X-Forwarded-For": "192.0.2.7"}
        )
        assert response.status_code == 302
        refused = guesser.post(
            LOGIN, data=RIGHT, environ_base=balancer, headers={"X-Forwarded-For": "198.51.100.9"}
        )
        assert refused.status_code == 429

    def test_after_the_window_the_right_password_works_again(self, staff_app, monkeypatch):
        client = staff_app.test_client()
        for _ in range(5):
            client.post(LOGIN, data=WRONG)
        assert client.post(LOGIN, data=RIGHT).status_code == 429
        later = time.time() + 15 * 60 + 1
        monkeypatch.setattr(time, "time", lambda: later)
        assert client.post(LOGIN, data=RIGHT).status_code == 302

    def test_attempts_sent_at_once_get_no_more_checks_than_the_limit(self, staff_app, monkeypatch):
        """12 wrong passwords for one account at the same moment: each password check waits
        until every request is either in a check or answered, so all 12 would be checked if
        the count came after the check; it comes before: 5 checked, 7 refused."""
        import webapp.views.auth as views

        sent = 12
        lock = threading.Lock()
        checking, answered = [0], []
        release = threading.Event()
        real = views.check_password_hash

        def held_check(pwhash: str, password: str) -> bool:
            with lock:
                checking[0] += 1
            release.wait(30)
            return real(pwhash, password)

        monkeypatch.setattr(views, "check_password_hash", held_check)
        guess = {"email": "nobody@example.com", "password": "guess"}

        def attempt() -> None:
            answered.append(staff_app.test_client().post(LOGIN, data=guess).status_code)

        threads = [threading.Thread(target=attempt) for _ in range(sent)]
        for thread in threads:
            thread.start()
        wait_for(lambda: checking[0] + len(answered) == sent, message="every attempt arrived")
        release.set()
        for thread in threads:
            thread.join(30)
        assert sorted(answered) == [200] * 5 + [429] * 7
        assert checking[0] == 5

    def test_the_429_under_api_is_json_with_retry_after(self, staff_app):
        from flask_limiter import RateLimitExceeded

        from webapp.auth import too_many_logins

        with staff_app.test_request_context("/api/v1/login", method="POST"):
            response = too_many_logins(RateLimitExceeded.__new__(RateLimitExceeded))
        assert response.status_code == 429 and response.is_json
        body = response.get_json()["error"]
        assert body["code"] == "too_many_logins" and "Try again in" in body["message"]
        assert int(response.headers["Retry-After"]) == body["retry_after"] > 0


class TestNoAccountOracle:
    """An unknown address costs a real password check, and is throttled like a known one."""

    def test_an_unknown_account_spends_a_password_check(self, staff_app, monkeypatch):
        import webapp.views.auth as views

        checks: list[str] = []
        real = views.check_password_hash

        def counting(pwhash: str, password: str) -> bool:
            checks.append(password)
            return real(pwhash, password)

        monkeypatch.setattr(views, "check_password_hash", counting)
        client = staff_app.test_client()
        response = client.post(LOGIN, data={"email": "nobody@example.com", "password": "guess"})
        assert "Wrong email or password" in response.get_data(as_text=True)
        assert checks == ["guess"]

    def test_an_unknown_account_is_throttled_like_a_known_one(self, staff_app):
        client = staff_app.test_client()
        guess = {"email": "nobody@example.com", "password": "guess"}
        answers = [client.post(LOGIN, data=guess).status_code for _ in range(6)]
        assert answers == [200] * 5 + [429]


class TestSessionRevocation:
    """Logout and a new password end the session cookies issued before, wherever saved."""

    def test_a_session_cookie_saved_before_logout_no_longer_works(self, staff_app):
        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        saved = {name: cookie(client, name) for name in ("session", REMEMBER_COOKIE)}
        assert all(saved.values()) and logged_in(client)
        client.post("/logout")
        thief = staff_app.test_client()
        for name, value in saved.items():
            thief.set_cookie(name, value)
        assert to_login(thief.get("/jobs/"))
        only_session = staff_app.test_client()
        only_session.set_cookie("session", saved["session"])
        assert to_login(only_session.get("/jobs/"))

    def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(self, staff_app):
        mine, other = staff_app.test_client(), staff_app.test_client()
        mine.post(LOGIN, data=RIGHT)
        other.post(LOGIN, data=RIGHT)
        other_remember = cookie(other, REMEMBER_COOKIE)
        response = mine.post(
            "/account/password",
            data={"current": "pw-staff", "new": "a-new-secret", "repeat": "a-new-secret"},
        )
        assert response.status_code == 303
        assert "Your password is changed" in mine.get("/account").get_data(as_text=True)
        assert logged_in(mine)
        assert to_login(other.get("/jobs/"))  # its remember-me was revoked too
        stranger = staff_app.test_client()
        stranger.set_cookie(REMEMBER_COOKIE, other_remember)
        assert to_login(stranger.get("/jobs/"))
        fresh = staff_app.test_client()
        assert fresh.post(LOGIN, data=RIGHT).status_code == 200  # the old password is gone
        new = {"email": "staff@example.com", "password": "a-new-secret"}
        assert fresh.post(LOGIN, data=new).status_code == 302

    @pytest.mark.parametrize(
        "form, field, message",
        [
            (
                {"current": "wrong", "new": "a-new-secret", "repeat": "a-new-secret"},
                "current",
                "This is not your current password.",
            ),
            (
                {"current": "pw-staff", "new": "short", "repeat": "short"},
                "new",
                "Use at least 8 characters.",
            ),
            (
                {"current": "pw-staff", "new": "a-new-secret", "repeat": "another-one"},
                "repeat",
                "The two new passwords differ.",
            ),
        ],
    )
    def test_a_refused_new_password_says_why_next_to_the_field_and_changes_nothing(
        self, staff_app, form, field, message
    ):
        from tests.unit.test_ui import Page

        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        response = client.post("/account/password", data=form)
        assert response.status_code == 200
        page = Page(response.get_data(as_text=True))
        errors = page.find("p", id=f"pw-{field}-error")
        assert len(errors) == 1 and message in errors[0]["text"]
        assert page.find("input", name=field)[0]["attrs"].get("aria-invalid") == "true"
        assert logged_in(client)
        with staff_app.app_context():
            user = db.session.scalars(sa.select(User).where(User.email == RIGHT["email"])).one()
            assert user.check_password("pw-staff") and user.session_version == 0

    def test_the_cli_password_ends_the_sessions(self, staff_app):
        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        result = staff_app.test_cli_runner().invoke(
            args=["users", "set-password", "staff@example.com", "--password", "brand-new-pw"]
        )
        assert result.exit_code == 0, result.output
        assert to_login(client.get("/jobs/"))

    def test_a_status_poll_loads_the_user_and_nothing_more_for_the_session(self, staff_app):
        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        with staff_app.app_context():
            from webapp.nursery.demo import seed_lots

            seed_lots(3)
            job_id = job_in("queued")
        with sql_statements(staff_app) as statements:
            response = client.get(f"/jobs/{job_id}/status", headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert len([s for s in statements if "FROM users" in s]) == 1
        assert not [s for s in statements if "remember_tokens" in s]
        assert not writes(statements)


class TestRememberMe:
    """A stored-hashed value that is new on every login and on every use, revoked on logout."""

    def test_two_logins_never_get_the_same_value_and_only_hashes_are_stored(self, staff_app):
        values = []
        for _ in range(2):
            client = staff_app.test_client()
            client.post(LOGIN, data=RIGHT)
            values.append(cookie(client, REMEMBER_COOKIE))
        assert values[0] and values[1] and values[0] != values[1]
        with staff_app.app_context():
            stored = set(db.session.scalars(sa.select(RememberToken.token_sha256)))
        assert stored == {hash_token(v) for v in values}

    def test_it_logs_back_in_with_a_new_value_and_the_old_one_is_refused(
        self, staff_app, monkeypatch
    ):
        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        first = cookie(client, REMEMBER_COOKIE)
        client.delete_cookie("session")  # the browser was closed
        assert logged_in(client)
        second = cookie(client, REMEMBER_COOKIE)
        assert second and second != first
        assert logged_in(client) and cookie(client, REMEMBER_COOKIE) == second  # session again
        later = utcnow() + timedelta(seconds=REMEMBER_GRACE_S + 1)
        monkeypatch.setattr(webapp.auth, "utcnow", lambda: later)
        replay = staff_app.test_client()
        replay.set_cookie(REMEMBER_COOKIE, first)
        response = replay.get("/jobs/")
        assert to_login(response)
        assert f"{REMEMBER_COOKIE}=;" in response.headers.get("Set-Cookie", "")  # cleared

    def test_tabs_restored_at_once_with_the_value_just_replaced_stay_logged_in(self, staff_app):
        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        first = cookie(client, REMEMBER_COOKIE)
        tabs = [staff_app.test_client() for _ in range(2)]
        for tab in tabs:
            tab.set_cookie(REMEMBER_COOKIE, first)
        assert all(logged_in(tab) for tab in tabs)
        values = [cookie(tab, REMEMBER_COOKIE) for tab in tabs]
        assert values[0] != first and values[1] == first  # rotated once; the second kept it
        with staff_app.app_context():
            stored = db.session.scalars(sa.select(RememberToken.token_sha256)).all()
        assert stored == [hash_token(values[0])]

    def test_logout_revokes_this_browsers_value_only(self, staff_app):
        laptop, phone = staff_app.test_client(), staff_app.test_client()
        laptop.post(LOGIN, data=RIGHT)
        phone.post(LOGIN, data=RIGHT)
        laptop_value = cookie(laptop, REMEMBER_COOKIE)
        laptop.post("/logout")
        assert cookie(laptop, REMEMBER_COOKIE) is None
        replay = staff_app.test_client()
        replay.set_cookie(REMEMBER_COOKIE, laptop_value)
        assert to_login(replay.get("/jobs/"))
        # The phone's session predates the logout; its own remember-me brings it back.
        assert logged_in(phone)

    def test_a_browser_back_by_its_remember_me_that_logs_out_is_logged_out(self, staff_app):
        # Logged out elsewhere (the session version moved on); this browser's session cookie
        # is stale, so its logout request is logged in by the remember-me value — which it
        # rotates — and the logout must revoke that one too, and send no new value.
        laptop, phone = staff_app.test_client(), staff_app.test_client()
        laptop.post(LOGIN, data=RIGHT)
        phone.post(LOGIN, data=RIGHT)
        phone.post("/logout")
        value = cookie(laptop, REMEMBER_COOKIE)
        laptop.post("/logout")
        assert cookie(laptop, REMEMBER_COOKIE) is None
        assert to_login(laptop.get("/jobs/"))
        replay = staff_app.test_client()
        replay.set_cookie(REMEMBER_COOKIE, value)
        assert to_login(replay.get("/jobs/"))
        with staff_app.app_context():
            assert db.session.scalars(sa.select(RememberToken)).all() == []

    def test_an_expired_value_is_refused(self, staff_app):
        client = staff_app.test_client()
        client.post(LOGIN, data=RIGHT)
        with staff_app.app_context():
            db.session.execute(
                sa.update(RememberToken).values(expires_at=utcnow() - timedelta(seconds=1))
            )
            db.session.commit()
        client.delete_cookie("session")
        assert to_login(client.get("/jobs/"))

    def test_a_cookie_of_flask_logins_own_format_is_refused(self, staff_app):
        from flask_login.utils import _cookie_digest

        with staff_app.test_request_context():
            legacy = f"1|{_cookie_digest('1')}"
        client = staff_app.test_client()
        client.set_cookie(REMEMBER_COOKIE, legacy)
        assert to_login(client.get("/jobs/"))


class TestCookieFlags:
    """HttpOnly and SameSite=Lax always; Secure when SITE_URL is https."""

    def login_cookies(self, app) -> dict[str, str]:
        with app.app_context():
            add_user()
        response = app.test_client().post(LOGIN, data=RIGHT)
        return {
            header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")
        }

    def test_over_https_both_cookies_are_secure(self, make_app):
        cookies = self.login_cookies(make_app(SITE_URL="https://labels.example"))
        for name in ("session", REMEMBER_COOKIE):
            assert "Secure" in cookies[name] and "HttpOnly" in cookies[name]
            assert "SameSite=Lax" in cookies[name]

    def test_over_http_they_are_not_secure(self, make_app):
        cookies = self.login_cookies(make_app(SITE_URL="http://localhost:5000"))
        for name in ("session", REMEMBER_COOKIE):
            assert "Secure" not in cookies[name] and "HttpOnly" in cookies[name]
            assert "SameSite=Lax" in cookies[name]


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def make_token(app, *args: str) -> str:
    result = cli(app, "tokens", "create", "staff@example.com", *args)
    assert result.exit_code == 0, result.output
    return result.output.rstrip("\n").splitlines()[-1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestApiTokens:
    """Name, creation, last use, optional expiry; `tokens list|revoke`; reads never write."""

    def test_an_expired_token_is_401_saying_so(self, staff_app):
        token = make_token(staff_app, "--expires-days", "1")
        client = staff_app.test_client()
        assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
        with staff_app.app_context():
            db.session.execute(
                sa.update(ApiToken).values(expires_at=utcnow() - timedelta(minutes=1))
            )
            db.session.commit()
        response = client.get("/api/v1/jobs", headers=bearer(token))
        assert response.status_code == 401 and response.is_json
        error = response.get_json()["error"]
        assert error["code"] == "token_expired" and "expired on" in error["message"]
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    def test_an_unknown_token_is_still_the_plain_401(self, staff_app):
        response = staff_app.test_client().get("/api/v1/jobs", headers=bearer("prt_nothing"))
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"

    def test_a_get_with_a_bearer_token_writes_nothing_to_the_database(self, staff_app):
        token = make_token(staff_app)
        client = staff_app.test_client()
        with sql_statements(staff_app) as statements:
            for _ in range(3):
                assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
        assert statements and not writes(statements)
        with staff_app.app_context():
            assert db.session.scalars(sa.select(ApiToken.last_used_at)).one() is None

    def test_a_write_request_records_the_last_use_in_the_row(self, staff_app):
        token = make_token(staff_app)
        client = staff_app.test_client()
        response = client.post(
            "/api/v1/jobs",
            headers=bearer(token),
            json={"kind": "potting_lot_labels", "params": {"lot_ids": [1]}},
        )
        assert response.status_code in (202, 422)
        with staff_app.app_context():
            used = db.session.scalars(sa.select(ApiToken.last_used_at)).one()
        assert used is not None and utcnow() - used < timedelta(minutes=5)

    def test_list_shows_name_times_and_expiry_and_filters_by_user(self, staff_app):
        make_token(staff_app, "--name", "label printer", "--expires-days", "30")
        other = cli(staff_app, "tokens", "create", "other@example.com", "--name", "nightly")
        assert other.exit_code == 0
        listing = cli(staff_app, "tokens", "list")
        assert listing.exit_code == 0, listing.output
        lines = listing.output.splitlines()
        assert lines[0].split() == ["ID", "USER", "NAME", "CREATED", "LAST", "USED", "EXPIRES"]
        assert "label printer" in lines[1] and "staff@example.com" in lines[1]
        expires = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%d")
        assert expires in lines[1] and "never" in lines[2] and "nightly" in lines[2]
        mine = cli(staff_app, "tokens", "list", "--user", "Other@example.com").output
        assert "nightly" in mine and "label printer" not in mine

    def test_revoke_stops_the_token_at_once(self, staff_app):
        token = make_token(staff_app, "--name", "old script")
        client = staff_app.test_client()
        assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
        with staff_app.app_context():
            token_id = db.session.scalars(sa.select(ApiToken.id)).one()
        result = cli(staff_app, "tokens", "revoke", str(token_id))
        assert result.exit_code == 0 and f"Revoked API token {token_id}" in result.output
        assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 401
        assert "No API tokens" in cli(staff_app, "tokens", "list").output

    def test_revoking_an_unknown_id_is_an_error(self, staff_app):
        result = cli(staff_app, "tokens", "revoke", "999")
        assert result.exit_code == 1 and "No API token with id 999" in result.output


@pytest.fixture
def redis_socket(tmp_path) -> Iterator[str]:
    """A real redis-server (the embedded one's binary) on a unix socket."""
    from workers import redis_server

    socket = tmp_path / "r.sock"
    process = redis_server.start(tmp_path / "redis-data", socket)
    yield str(socket)
    process.terminate()
    process.wait(20)


class TestWithRedis:
    """With the app's Redis: the throttle counts there, and reads note their last use there."""

    def test_reads_note_the_last_use_in_redis_and_tokens_list_shows_it(
        self, make_app, redis_socket
    ):
        app = make_app(BROKER="redis", REDIS_URL=f"unix://{redis_socket}")
        with app.app_context():
            add_user()
        assert app.config["RATELIMIT_STORAGE_URI"] == f"redis+unix://{redis_socket}"
        token = make_token(app, "--name", "poller")
        client = app.test_client()
        with sql_statements(app) as statements:
            assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
        assert not writes(statements)
        listing = cli(app, "tokens", "list").output.splitlines()
        # ID USER NAME CREATED(date time) LAST-USED(date time) EXPIRES
        cells = listing[1].split()
        assert cells[2] == "poller" and cells[5] == utcnow().strftime("%Y-%m-%d")
        assert cells[7] == "never"
        # A new token that gets the revoked one's id (SQLite) does not inherit its last use.
        assert cli(app, "tokens", "revoke", cells[0]).exit_code == 0
        make_token(app, "--name", "successor")
        cells = cli(app, "tokens", "list").output.splitlines()[1].split()
        assert cells[0] == "1" and cells[2] == "successor" and cells[5] == "-"

    def test_failed_logins_are_counted_in_redis(self, make_app, redis_socket):
        import redis

        app = make_app(BROKER="redis", REDIS_URL=f"unix://{redis_socket}")
        with app.app_context():
            add_user()
        client = app.test_client()
        for _ in range(5):
            client.post(LOGIN, data=WRONG)
        assert client.post(LOGIN, data=RIGHT).status_code == 429
        keys = redis.Redis(unix_socket_path=redis_socket).keys("*pressroom-login*")
        assert keys

    def test_a_redis_that_does_not_answer_fails_no_request(self, make_app, tmp_path):
        app = make_app(BROKER="redis", REDIS_URL=f"unix://{tmp_path / 'nothing.sock'}")
        with app.app_context():
            add_user()
        token = make_token(app)
        client = app.test_client()
        assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
        for _ in range(5):
            assert client.post(LOGIN, data=WRONG).status_code == 200
        assert client.post(LOGIN, data=RIGHT).status_code == 429  # counted in memory instead
        assert cli(app, "tokens", "list").exit_code == 0
