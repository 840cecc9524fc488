"""The status path every open job page polls (webapp/jobs/poll.py): a watch token instead of the
session, one SELECT, the 304 before any template; and the API's GET of one job by its owner."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, add_user, job_in
from webapp import jobs
from webapp.auth import create_token
from webapp.extensions import db
from webapp.jobs import poll
from webapp.models import ApiToken, Job, Role, User, utcnow

HX = {"HX-Request": "true"}


def poll_url(page: str) -> str:
    found = re.search(r'hx-get="([^"]+/status\?w=[^"]+)"', page)
    assert found, "the partial polls with a watch token"
    return html.unescape(found.group(1))


def staff_job(app: Flask, state: str, lot_ids: list[int] | None = None) -> str:
    """Staff (made once) and a job of theirs in `state`, in an app context of its own: the
    requests below must each have their own (a shared one keeps `g`, the logged-in user with
    it, from one request to the next)."""
    with app.app_context():
        if db.session.scalar(sa.select(sa.func.count(User.id))) == 0:
            from webapp.nursery.demo import seed_lots

            add_user()
            seed_lots(10)
        return job_in(state, lot_ids=lot_ids)


@pytest.fixture
def watched(app: Flask, client: FlaskClient, auth: AuthActions) -> tuple[str, str]:
    """(job id, poll URL) of staff's running job, as its page gives it."""
    job_id = staff_job(app, "running")
    assert auth.login().status_code == 302
    return job_id, poll_url(client.get(f"/jobs/{job_id}").text)


class TestWatchToken:
    def test_a_poll_is_answered_without_reading_the_session_and_sets_no_cookie(
        self, app: Flask, watched: tuple[str, str]
    ):
        job_id, url = watched
        # A cookie that is no session at all: it is not decoded, the token opens the status.
        bare = app.test_client()
        bare.set_cookie("session", "not-a-signed-session")
        answer = bare.get(url, headers=HX)
        assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
        assert f'id="job-status-{job_id}"' in answer.text
        assert "1 of 3" in answer.text  # the running job's own counts
        assert poll_url(answer.text) == url  # the next poll carries the same token
        assert 'name="csrf_token"' not in answer.text  # htmx sends the page's token as a header

    def test_an_unchanged_poll_is_a_304_and_a_change_is_a_200(
        self, app: Flask, client: FlaskClient, watched: tuple[str, str]
    ):
        job_id, url = watched
        first = client.get(url, headers=HX)
        etag = first.headers["ETag"]
        again = client.get(url, headers={**HX, "If-None-Match": etag})
        assert again.status_code == 304 and again.data == b""
        with app.app_context():
            jobs.cancel(db.session.get(Job, job_id))
        changed = client.get(url, headers={**HX, "If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["ETag"] != etag
        assert "Nothing was produced" in changed.text and "hx-get" not in changed.text

    def test_the_poll_keeps_the_language_the_page_was_shown_in(
        self, app: Flask, client: FlaskClient, auth: AuthActions
    ):
        job_id = staff_job(app, "running")
        auth.login()
        page = client.get(f"/jobs/{job_id}", headers={"Accept-Language": "nl"})
        answer = client.get(poll_url(page.text), headers=HX)
        assert "1 van 3" in answer.text, answer.text[:400]

    def test_a_tampered_or_foreign_token_is_refused_like_an_expired_session(
        self, app: Flask, watched: tuple[str, str]
    ):
        job_id, url = watched
        with app.app_context():
            other_id = add_user("other@example.com", "pw-other").id
        mine = url.split("w=")[1]
        user_id, locale, issued, signature = mine.split(".")
        later = f"{int(issued, 16) + 1:x}"
        forged = [
            f"{user_id}.{locale}.{issued}.{signature[:-2]}xx",  # the signature changed
            f"{other_id}.{locale}.{issued}.{signature}",  # someone else's id on my signature
            f"{user_id}.nl.{issued}.{signature}",  # another locale than was signed
            f"{user_id}.{locale}.{later}.{signature}",  # another minute than was signed
        ]
        bare = app.test_client()
        bare.set_cookie("session", "x")
        for token in forged:
            answer = bare.get(f"/jobs/{job_id}/status?w={token}", headers=HX)
            assert answer.status_code == 401 and "HX-Redirect" in answer.headers, token
        # A token for one job opens no other job.
        second = staff_job(app, "running", lot_ids=[4, 5])
        answer = bare.get(f"/jobs/{second}/status?w={mine}", headers=HX)
        assert answer.status_code == 401

    def test_a_token_lasts_as_long_as_a_session_from_its_page(
        self, app: Flask, watched: tuple[str, str]
    ):
        job_id, _url = watched
        with app.test_request_context():
            staff = db.session.scalars(sa.select(User)).one()
            lifetime = int(app.permanent_session_lifetime.total_seconds() // 60)
            now = int(time.time() // 60)
            fresh = poll.token(job_id, staff, "en", issued=now - lifetime + 1)
            stale = poll.token(job_id, staff, "en", issued=now - lifetime - 1)
        browser = app.test_client()
        browser.set_cookie("session", "x")
        assert browser.get(f"/jobs/{job_id}/status?w={fresh}", headers=HX).status_code == 200
        assert browser.get(f"/jobs/{job_id}/status?w={stale}", headers=HX).status_code == 401

    def test_a_w_on_any_other_job_url_is_an_ordinary_request(
        self, app: Flask, client: FlaskClient, watched: tuple[str, str]
    ):
        job_id, url = watched
        token = url.split("w=")[1]
        # The logged-in browser's own session is read as usual there (no 500, no anonymous).
        assert client.get(f"/jobs/{job_id}?w={token}").status_code == 200
        assert client.post(f"/jobs/{job_id}/cancel?w={token}").status_code in (200, 303)

    def test_logout_ends_the_tokens_issued_before(
        self, app: Flask, auth: AuthActions, watched: tuple[str, str]
    ):
        _job_id, url = watched
        other = app.test_client()
        other.set_cookie("session", "x")
        assert other.get(url, headers=HX).status_code == 200
        auth.logout()
        assert other.get(url, headers=HX).status_code == 401

    def test_a_browser_whose_session_cookie_expired_goes_the_login_way(
        self, app: Flask, watched: tuple[str, str]
    ):
        job_id, url = watched
        answer = app.test_client().get(url, headers={**HX, "HX-Current-URL": f"/jobs/{job_id}"})
        assert answer.status_code == 401 and "/login" in answer.headers["HX-Redirect"]

    def test_the_last_poll_shows_the_finished_file_and_stops(
        self, app: Flask, client: FlaskClient, auth: AuthActions
    ):
        job_id = staff_job(app, "queued")
        auth.login()
        url = poll_url(client.get(f"/jobs/{job_id}").text)
        with app.app_context():
            from webapp.jobs.lease import claim

            lease = claim(job_id)
            assert lease is not None
            tmp = lease.temp_path()
            tmp.write_bytes(b"%PDF-1.4\n% three labels\n" * 40)
            lease.finish(tmp, "application/pdf")
        answer = client.get(url, headers=HX)
        assert answer.status_code == 200 and "hx-get" not in answer.text
        assert f"/jobs/{job_id}/download" in answer.text
        assert "960 bytes" in answer.text or "960 B" in answer.text, answer.text[:600]

    def test_a_poll_without_a_token_still_needs_the_login(
        self, app: Flask, client: FlaskClient, watched: tuple[str, str]
    ):
        job_id, _url = watched
        assert client.get(f"/jobs/{job_id}/status", headers=HX).status_code == 200
        assert app.test_client().get(f"/jobs/{job_id}/status", headers=HX).status_code == 401


class TestApiGetOfOneJob:
    def test_the_owners_get_is_the_same_json_as_the_long_way(self, app: Flask):
        job_id = staff_job(app, "done")
        with app.app_context():
            token = create_token(db.session.scalars(sa.select(User)).one())
        fast = app.test_client().get(
            f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert fast.status_code == 200
        with app.test_request_context():
            expected = jobs.job_json(db.session.get(Job, job_id))
        assert fast.get_json() == expected
        assert fast.get_json()["file"]["size"] == 24

    def test_refusals_and_other_readers_go_the_long_way(self, app: Flask):
        job_id = staff_job(app, "running")
        with app.app_context():
            staff = db.session.scalars(sa.select(User)).one()
            admin = add_user("admin@example.com", "pw-admin", role=Role.ADMIN)
            other = add_user("other@example.com", "pw-other")
            tokens = {
                "admin": create_token(admin),
                "other": create_token(other),
                "staff": create_token(staff),
            }
        api = app.test_client()

        def get(token: str, job: str = job_id) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return api.get(f"/api/v1/jobs/{job}", headers=headers).status_code

        assert get(tokens["admin"]) == 200  # an admin reads anyone's
        assert get(tokens["other"]) == 404  # another user's job: not found
        assert get("not-a-token") == 401
        assert get(tokens["staff"], "x" * 30) == 404
        assert get(tokens["staff"]) == 200
        with app.app_context():
            db.session.execute(
                sa.update(ApiToken).values(expires_at=utcnow() - timedelta(minutes=1))
            )
            db.session.commit()
        assert get(tokens["staff"]) == 401
        assert get(tokens["admin"]) == 401


class TestSeenMark:
    """`watch.seen` on a real broker: the Redis mark a job's polls keep alive (webapp/jobs/watch.py)."""

    @pytest.fixture
    def redis_calls(self, app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        from webapp.jobs import watch

        calls: list[dict[str, Any]] = []

        class Recorder:
            fail = False

            def set(self, key: str, value: int, px: int) -> None:
                if Recorder.fail:
                    raise ConnectionError("redis is down")
                calls.append({"key": key, "px": px, "at": clock[0]})

        clock = [1000.0]
        monkeypatch.setattr(watch.time, "monotonic", lambda: clock[0])
        monkeypatch.setattr(watch, "_client", Recorder)
        monkeypatch.setattr(watch, "_written", {})
        monkeypatch.setitem(app.extensions, "pressroom.broker", object())  # not the stub
        self.clock, self.recorder = clock, Recorder
        return calls

    def test_a_process_writes_the_mark_once_a_sixth_of_the_idle_time_and_it_outlives_the_last_poll(
        self, app: Flask, redis_calls: list[dict[str, Any]]
    ):
        from webapp.jobs import watch

        app.config["READY_MAIL_IDLE_S"] = 30.0
        with app.app_context():
            for second in range(12):  # a page polling once a second
                self.clock[0] = 1000.0 + second
                watch.seen("job-a")
            watch.seen("job-b")
        assert [(c["key"], c["at"]) for c in redis_calls] == [
            ("pressroom:seen:job-a", 1000.0),
            ("pressroom:seen:job-a", 1005.0),
            ("pressroom:seen:job-a", 1010.0),
            ("pressroom:seen:job-b", 1011.0),
        ]
        # Each mark lives 35 s: from the last write (10 s) past the last poll (11 s) by >= 30 s.
        last = redis_calls[2]
        assert last["px"] == 35_000 and last["at"] + last["px"] / 1000 - 1011.0 >= 30.0

    def test_a_mark_redis_did_not_take_is_written_again_at_the_next_poll(
        self, app: Flask, redis_calls: list[dict[str, Any]]
    ):
        from webapp.jobs import watch

        with app.app_context():
            self.recorder.fail = True
            watch.seen("job-a")  # never raises into the status read
            self.recorder.fail = False
            self.clock[0] += 1
            watch.seen("job-a")
        assert [c["at"] for c in redis_calls] == [1001.0]
