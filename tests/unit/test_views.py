"""The server side of the browser UI (DESIGN §4): login, starting jobs, the job page and its one
status partial, ownership, CSRF, the potting-lot table, escaping, and /healthz."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tests.conftest import add_user, job_in
from tests.unit.test_ui import Page
from webapp import jobs
from webapp.extensions import db
from webapp.jobs.lease import claim
from webapp.jobs.reaper import expire
from webapp.messages import Msg
from webapp.models import Artifact, Job, PottingLot, Role, utcnow

KIND = "potting_lot_labels"
XSS = "<script>alert(1)</script>"


def status_roots(html: str) -> list[dict]:
    return Page(html).find(data_job_status=True)


def one_status_root(html: str) -> dict:
    roots = status_roots(html)
    assert len(roots) == 1, f"{len(roots)} status partials"
    return roots[0]


def make_job(app, owner_email: str = "staff@example.com", lot_ids: list[int] | None = None) -> str:
    with app.app_context():
        from webapp.models import User

        owner = db.session.scalars(sa.select(User).where(User.email == owner_email)).one()
        job, _ = jobs.submit(owner, KIND, {"lot_ids": lot_ids or [1, 2]})
        return job.id


def job_row(app, job_id: str) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


@pytest.fixture
def site(app):
    """A staff user, another staff user, an admin and 40 potting lots."""
    from webapp.nursery.demo import seed_lots

    with app.app_context():
        add_user()
        add_user("other@example.com", "pw-other")
        add_user("admin@example.com", "pw-admin", Role.ADMIN)
        seed_lots(40)
    return app


@pytest.fixture
def logged_in(client, auth, site):
    assert auth.login().status_code == 302
    return client


def htmx(**extra: str) -> dict[str, str]:
    return {"HX-Request": "true", **extra}


class TestLogin:
    """The login form at /login with fields email and password; next= only to our own pages."""

    def test_the_login_form_has_email_and_password_fields(self, client, site):
        page = Page(client.get("/login").get_data(as_text=True))
        assert page.find("input", name="email") and page.find("input", name="password")

    def test_good_credentials_log_in_and_go_to_the_table(self, client, site):
        response = client.post(
            "/login", data={"email": "Staff@Example.com", "password": "pw-staff"}
        )
        assert response.status_code == 302
        assert urlsplit(response.headers["Location"]).path == "/nursery/potting-lots"
        assert client.get("/jobs/").status_code == 200

    @pytest.mark.parametrize(
        "email, password",
        [
            ("staff@example.com", "wrong"),
            ("nobody@example.com", "pw-staff"),
            ("", ""),
        ],
    )
    def test_bad_credentials_show_the_form_again_with_a_message(
        self, client, site, email, password
    ):
        response = client.post("/login", data={"email": email, "password": password})
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert Page(text).find("input", name="password")
        assert client.get("/jobs/").status_code == 302  # not logged in

    def test_every_page_names_its_icon_and_the_icon_is_served(self, client, site):
        """Browsers ask for /favicon.ico (a 404 in the console) unless the page names an icon."""
        icons = Page(client.get("/login").get_data(as_text=True)).find("link", rel="icon")
        assert len(icons) == 1
        answer = client.get(icons[0]["attrs"]["href"])
        assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
        answer.close()

    def test_the_login_page_after_an_expired_session_says_so(self, client, site):
        text = client.get("/login?expired=1&next=/jobs/").get_data(as_text=True)
        assert "Your session expired" in text

    def test_a_wrong_password_says_so(self, client, site):
        text = client.post("/login", data={"email": "staff@example.com", "password": "x"}).get_data(
            as_text=True
        )
        assert "Wrong email or password" in text

    @pytest.mark.parametrize(
        "target", ["/jobs/", "/nursery/potting-lots?pot_size=P9&week=2026-W48"]
    )
    def test_next_leads_back_to_a_page_of_ours(self, client, site, target):
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"email": "staff@example.com", "password": "pw-staff"},
        )
        assert response.headers["Location"] == target

    @pytest.mark.parametrize(
        "target",
        [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "http:/evil.example",
        ],
    )
    def test_next_never_leads_off_site(self, client, site, target):
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"email": "staff@example.com", "password": "pw-staff"},
        )
        assert response.status_code == 302
        assert urlsplit(response.headers["Location"]).path == "/nursery/potting-lots"
        assert "evil" not in response.headers["Location"]

    def test_a_protected_page_sends_to_login_and_back_after_it(self, client, site):
        response = client.get("/nursery/potting-lots?pot_size=P9")
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        back = parse_qs(location.query)["next"][0]
        assert back == "/nursery/potting-lots?pot_size=P9"
        login_page = client.get(response.headers["Location"]).get_data(as_text=True)
        action = Page(login_page).find("form", method="post")[0]["attrs"]["action"]
        done = client.post(action, data={"email": "staff@example.com", "password": "pw-staff"})
        assert done.headers["Location"] == back


class TestLogout:
    """Logout is a POST and ends the session, remember-me cookie included."""

    def test_logout_by_get_is_not_allowed(self, logged_in):
        assert logged_in.get("/logout").status_code == 405
        assert logged_in.get("/jobs/").status_code == 200

    def test_logout_ends_the_session(self, logged_in):
        response = logged_in.post("/logout")
        assert (
            response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
        )
        assert logged_in.get("/jobs/").status_code == 302

    def test_logout_without_a_session_still_goes_to_login(self, client, site):
        response = client.post("/logout")
        assert (
            response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
        )


class TestStartingAJob:
    """Print → 303 to /jobs/<id> (204 + HX-Redirect for htmx); it prints every selected row."""

    def test_print_answers_303_to_the_job_page(self, site, logged_in):
        response = logged_in.post(
            "/nursery/potting-lots/print", data={"pot_size": "", "copies": "1"}
        )
        assert response.status_code == 303
        match = re.fullmatch(r"/jobs/([\w-]+)", urlsplit(response.headers["Location"]).path)
        assert match
        page = logged_in.get(response.headers["Location"])
        assert page.status_code == 200
        assert one_status_root(page.get_data(as_text=True))["attrs"]["data-job-status"] == "queued"

    def test_an_htmx_print_answers_204_with_hx_redirect(self, site, logged_in):
        response = logged_in.post("/nursery/potting-lots/print", data={}, headers=htmx())
        assert response.status_code == 204
        assert re.fullmatch(r"/jobs/[\w-]+", response.headers["HX-Redirect"])

    def test_print_uses_every_row_the_filters_select_not_only_the_page(self, make_app):
        app = make_app(PAGE_SIZE=10)
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            add_user()
            seed_lots(40)
            p9 = db.session.scalars(
                sa.select(PottingLot.id)
                .where(PottingLot.pot_size == "P9")
                .order_by(PottingLot.lot_number)
            ).all()
        client = app.test_client()
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        everything = client.post("/nursery/potting-lots/print", data={})
        job = job_row(app, everything.headers["Location"].rsplit("/", 1)[1])
        assert job.progress_total == 40 and len(job.params["lot_ids"]) == 40
        filtered = client.post(
            "/nursery/potting-lots/print", data={"pot_size": "P9", "copies": "2"}
        )
        job = job_row(app, filtered.headers["Location"].rsplit("/", 1)[1])
        assert job.params["lot_ids"] == p9 and job.progress_total == 2 * len(p9)

    def test_printing_when_nothing_matches_goes_back_with_a_message(self, site, logged_in):
        response = logged_in.post(
            "/nursery/potting-lots/print",
            data={"q": "no such plant"},
            headers={"Referer": "/nursery/potting-lots?q=no+such+plant"},
        )
        assert response.status_code == 303
        page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
        assert "No potting lots match" in page
        with site.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    def test_a_bad_number_of_copies_goes_back_with_a_message(self, site, logged_in):
        response = logged_in.post("/nursery/potting-lots/print", data={"copies": "lots"})
        assert response.status_code == 303
        page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
        assert "Copies: Enter a number." in page

    @pytest.mark.parametrize(
        "form, flashed, field, message",
        [
            ({"copies": "101"}, "Copies: Enter 100 or less.", "copies", "Enter 100 or less."),
            ({"copies": "0"}, "Copies: Enter 1 or more.", "copies", "Enter 1 or more."),
            (
                {"layout": "a4_3x8", "start_position": "25"},
                "Start at label: Enter 24 or less.",
                "start_position",
                "Enter 24 or less.",
            ),
            ({"offset_x": "11"}, "Offset → mm: Enter 10 or less.", "offset_x", "Enter 10 or less."),
        ],
    )
    def test_a_refused_option_is_flashed_with_its_label_and_shown_next_to_its_field(
        self, site, logged_in, form, flashed, field, message
    ):
        response = logged_in.post("/nursery/potting-lots/print", data=form)
        assert response.status_code == 303
        html = logged_in.get(response.headers["Location"]).get_data(as_text=True)
        assert flashed in html
        page = Page(html)
        error = page.find("small", id=f"err-{field}")
        assert error and error[0]["text"].strip() == message
        control = page.find(name=field, aria_invalid="true")
        assert control and f"err-{field}" in control[0]["attrs"]["aria-describedby"]
        with site.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    def test_reprint_prints_the_checked_rows_with_copies(self, site, logged_in):
        response = logged_in.post(
            "/nursery/potting-lots/reprint", data={"lot_id": ["7", "3"], "copies": "3"}
        )
        assert response.status_code == 303
        job = job_row(site, response.headers["Location"].rsplit("/", 1)[1])
        assert sorted(job.params["lot_ids"]) == [3, 7] and job.progress_total == 6

    def test_reprint_without_checked_rows_asks_for_one(self, site, logged_in):
        response = logged_in.post("/nursery/potting-lots/reprint", data={"copies": "1"})
        assert response.status_code == 303
        assert "Tick at least one row" in logged_in.get(response.headers["Location"]).get_data(
            as_text=True
        )

    @pytest.mark.parametrize("lot_id", ["²", "1" + "0" * 25])
    def test_a_reprint_of_a_lot_id_no_database_holds_is_refused_not_a_crash(
        self, site, logged_in, lot_id
    ):
        response = logged_in.post("/nursery/potting-lots/reprint", data={"lot_id": [lot_id]})
        assert response.status_code == 303
        page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
        assert "flash-error" in page

    def test_printing_the_same_again_shows_the_same_job(self, site, logged_in):
        first = logged_in.post("/nursery/potting-lots/print", data={"pot_size": "P9"})
        again = logged_in.post("/nursery/potting-lots/print", data={"pot_size": "P9"})
        assert first.headers["Location"] == again.headers["Location"]


class TestJobPage:
    """One status partial; it polls (every 1s, outerHTML) only while queued or running."""

    def _root(self, client, job_id: str) -> dict:
        page = client.get(f"/jobs/{job_id}")
        assert page.status_code == 200
        return one_status_root(page.get_data(as_text=True))

    @pytest.mark.parametrize("state", ["queued", "running"])
    def test_a_live_job_polls_every_second_with_an_outer_html_swap(self, site, logged_in, state):
        job_id = make_job(site)
        if state == "running":
            with site.app_context():
                claim(job_id)
        root = self._root(logged_in, job_id)
        assert root["attrs"]["data-job-status"] == state
        assert root["attrs"]["hx-trigger"] == "every 1s"
        assert root["attrs"]["hx-swap"] == "outerHTML"
        # Its polls carry the page's watch token (webapp/jobs/poll.py, tests/unit/test_status_fast_path.py).
        assert root["attrs"]["hx-get"].startswith(f"/jobs/{job_id}/status?w=")
        assert root["attrs"]["id"] == f"job-status-{job_id}"

    def test_a_done_job_stops_polling_and_offers_the_download(self, site, logged_in, stub_worker):
        job_id = make_job(site)
        stub_worker()
        html = logged_in.get(f"/jobs/{job_id}").get_data(as_text=True)
        root = one_status_root(html)
        assert root["attrs"]["data-job-status"] == "done"
        assert not {"hx-trigger", "hx-get"} & set(root["attrs"])
        assert "hx-trigger" not in html.split('data-job-status="done"', 1)[1].split("</div>", 1)[0]
        links = [
            a for a in Page(html).find("a") if a["attrs"].get("href") == f"/jobs/{job_id}/download"
        ]
        assert links and links[0]["text"].strip().startswith("Download")

    def _final(self, site, state: str) -> str:
        with site.app_context():
            return job_in(state)

    @pytest.mark.parametrize("state", ["failed", "cancelled", "expired"])
    def test_final_states_carry_no_trigger(self, site, logged_in, state):
        job_id = self._final(site, state)
        root = self._root(logged_in, job_id)
        assert root["attrs"]["data-job-status"] == state
        assert not {"hx-trigger", "hx-get"} & set(root["attrs"])

    def test_no_element_of_a_final_partial_polls(self, site, logged_in):
        job_id = self._final(site, "failed")
        partial = logged_in.get(f"/jobs/{job_id}/status").get_data(as_text=True)
        assert "hx-trigger" not in partial and "every 1s" not in partial
        assert "Potting lot #2 was deleted after this job was started" in partial

    def test_an_expired_job_says_expired_regenerate(self, site, logged_in, stub_worker):
        job_id = make_job(site)
        stub_worker()
        with site.app_context():
            db.session.execute(
                sa.update(Artifact).values(expires_at=utcnow() - timedelta(seconds=1))
            )
            db.session.commit()
            expire()
        html = logged_in.get(f"/jobs/{job_id}").get_data(as_text=True)
        assert one_status_root(html)["attrs"]["data-job-status"] == "expired"
        assert "expired — regenerate" in html
        response = logged_in.post(f"/jobs/{job_id}/retry")  # "regenerate"
        assert response.status_code == 303
        stub_worker()
        assert job_row(site, job_id).status == "done"

    def test_reloading_the_page_shows_the_same_job(self, site, logged_in):
        job_id = make_job(site)
        first = one_status_root(logged_in.get(f"/jobs/{job_id}").get_data(as_text=True))
        again = one_status_root(logged_in.get(f"/jobs/{job_id}").get_data(as_text=True))
        assert first["attrs"]["id"] == again["attrs"]["id"] == f"job-status-{job_id}"

    def test_an_unknown_job_is_404(self, logged_in):
        assert logged_in.get("/jobs/no-such-job").status_code == 404
        assert logged_in.get("/jobs/no-such-job/status").status_code == 404


class TestStatusPartial:
    """The partial alone: same root as the page, 304 when unchanged, Vary: HX-Request."""

    def test_the_partial_is_the_root_element_alone(self, site, logged_in):
        job_id = make_job(site)
        response = logged_in.get(f"/jobs/{job_id}/status", headers=htmx())
        text = response.get_data(as_text=True)
        assert response.status_code == 200 and "<html" not in text and "<body" not in text
        assert text.lstrip().startswith(f'<div id="job-status-{job_id}"')
        assert one_status_root(text)["attrs"]["data-job-status"] == "queued"
        assert "HX-Request" in response.headers["Vary"]
        assert "no-cache" in response.headers["Cache-Control"]

    def test_an_unchanged_poll_is_304_even_seconds_later(self, site, logged_in, monkeypatch):
        job_id = make_job(site)
        first = logged_in.get(f"/jobs/{job_id}/status", headers=htmx())
        etag = first.headers["ETag"]
        # The CSRF tokens in the partial's forms are re-signed every second: a later poll of an
        # unchanged job must still match.
        import itsdangerous.timed

        later = time.time() + 5
        monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
        second = logged_in.get(f"/jobs/{job_id}/status", headers=htmx(**{"If-None-Match": etag}))
        assert second.status_code == 304 and second.data == b""
        assert second.headers["ETag"] == etag and "HX-Request" in second.headers["Vary"]

    def test_a_changed_job_is_200_with_a_new_etag(self, site, logged_in):
        job_id = make_job(site)
        etag = logged_in.get(f"/jobs/{job_id}/status", headers=htmx()).headers["ETag"]
        with site.app_context():
            lease = claim(job_id)
            lease.progress(1, "drawing_labels", force=True)
        response = logged_in.get(f"/jobs/{job_id}/status", headers=htmx(**{"If-None-Match": etag}))
        assert response.status_code == 200 and response.headers["ETag"] != etag
        assert (
            one_status_root(response.get_data(as_text=True))["attrs"]["data-job-status"]
            == "running"
        )

    def test_cancel_from_htmx_answers_the_new_partial(self, site, logged_in):
        job_id = make_job(site)
        response = logged_in.post(f"/jobs/{job_id}/cancel", headers=htmx())
        assert response.status_code == 200
        root = one_status_root(response.get_data(as_text=True))
        assert root["attrs"]["data-job-status"] == "cancelled" and "hx-trigger" not in root["attrs"]

    def test_cancel_from_a_plain_form_goes_back_to_the_job_page(self, site, logged_in):
        job_id = make_job(site)
        response = logged_in.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 303 and response.headers["Location"] == f"/jobs/{job_id}"
        assert job_row(site, job_id).status == "cancelled"

    def test_cancelling_a_finished_job_shows_its_state_instead_of_an_error(
        self, site, logged_in, stub_worker
    ):
        job_id = make_job(site)
        stub_worker()
        response = logged_in.post(f"/jobs/{job_id}/cancel", headers=htmx())
        assert response.status_code == 200
        assert (
            one_status_root(response.get_data(as_text=True))["attrs"]["data-job-status"] == "done"
        )


class TestExpiredSession:
    """No session: htmx gets 401 + HX-Redirect to login (next = the page), pages a redirect."""

    def test_an_htmx_poll_without_a_session_is_401_with_hx_redirect(self, site, client):
        job_id = make_job(site)
        response = client.get(
            f"/jobs/{job_id}/status",
            headers=htmx(**{"HX-Current-URL": f"http://localhost/jobs/{job_id}"}),
        )
        assert response.status_code == 401 and response.data == b""
        target = urlsplit(response.headers["HX-Redirect"])
        assert target.path == "/login"
        assert parse_qs(target.query)["next"] == [f"/jobs/{job_id}"]
        assert "Location" not in response.headers

    def test_the_page_with_its_filters_is_kept_for_after_the_login(self, site, client):
        current = "http://localhost/nursery/potting-lots?pot_size=P9&week=2026-W48"
        response = client.post(
            "/nursery/potting-lots/print", data={}, headers=htmx(**{"HX-Current-URL": current})
        )
        assert response.status_code == 401
        next_url = parse_qs(urlsplit(response.headers["HX-Redirect"]).query)["next"][0]
        assert next_url == "/nursery/potting-lots?pot_size=P9&week=2026-W48"

    def test_a_current_url_on_another_site_is_not_used(self, site, client):
        response = client.get(
            "/jobs/x/status", headers=htmx(**{"HX-Current-URL": "https://evil.example/x"})
        )
        assert response.status_code == 401
        assert "evil" not in response.headers["HX-Redirect"]

    def test_a_plain_request_without_a_session_is_redirected(self, site, client):
        job_id = make_job(site)
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 302
        target = urlsplit(response.headers["Location"])
        assert target.path == "/login" and parse_qs(target.query)["next"] == [f"/jobs/{job_id}"]

    def test_a_plain_post_without_a_session_returns_to_the_form_page_after_login(
        self, site, client
    ):
        response = client.post(
            "/nursery/potting-lots/print",
            data={},
            headers={"Referer": "http://localhost/nursery/potting-lots?q=Rosa"},
        )
        assert response.status_code == 302
        target = urlsplit(response.headers["Location"])
        assert parse_qs(target.query)["next"] == ["/nursery/potting-lots?q=Rosa"]


class TestOwnership:
    """Another user's job is 404 everywhere; admins see everyone's."""

    @pytest.mark.parametrize("suffix", ["", "/status", "/download"])
    def test_another_users_job_is_404(self, site, client, auth, stub_worker, suffix):
        job_id = make_job(site)
        stub_worker()
        auth.login("other@example.com", "pw-other")
        assert client.get(f"/jobs/{job_id}{suffix}").status_code == 404

    @pytest.mark.parametrize("action", ["cancel", "retry"])
    def test_another_user_cannot_cancel_or_retry(self, site, client, auth, action):
        job_id = make_job(site)
        auth.login("other@example.com", "pw-other")
        assert client.post(f"/jobs/{job_id}/{action}").status_code == 404
        assert job_row(site, job_id).status == "queued"

    @pytest.mark.parametrize("suffix", ["", "/status", "/download"])
    def test_an_admin_sees_everyones_job(self, site, client, auth, stub_worker, suffix):
        job_id = make_job(site)
        stub_worker()
        auth.login("admin@example.com", "pw-admin")
        assert client.get(f"/jobs/{job_id}{suffix}").status_code == 200

    def test_my_jobs_lists_only_mine_with_their_state(self, site, client, auth):
        mine = make_job(site)
        theirs = make_job(site, "other@example.com", [5])
        auth.login()
        html = client.get("/jobs/").get_data(as_text=True)
        assert f"/jobs/{mine}" in html and f"/jobs/{theirs}" not in html
        assert "Queued" in html or "queued" in html

    def test_an_admin_can_list_everyones_jobs(self, site, client, auth):
        theirs = make_job(site, "other@example.com", [5])
        auth.login("admin@example.com", "pw-admin")
        assert f"/jobs/{theirs}" not in client.get("/jobs/").get_data(as_text=True)
        assert f"/jobs/{theirs}" in client.get("/jobs/?all=1").get_data(as_text=True)

    def test_a_staff_user_asking_for_everyones_jobs_gets_only_their_own(self, site, client, auth):
        theirs = make_job(site, "other@example.com", [5])
        auth.login()
        assert f"/jobs/{theirs}" not in client.get("/jobs/?all=1").get_data(as_text=True)


def body_token(html: str) -> str:
    """The CSRF token that htmx sends: from hx-headers on <body>."""
    body = Page(html).find("body")[0]
    return json.loads(body["attrs"]["hx-headers"])["X-CSRFToken"]


def form_token(html: str) -> str:
    return Page(html).find("input", name="csrf_token")[0]["attrs"]["value"]


@pytest.fixture
def csrf_app(make_app):
    """An app with CSRF protection on, as in production."""
    from webapp.nursery.demo import seed_lots

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        add_user()
        seed_lots(10)
    return app


def csrf_login(app):
    client = app.test_client()
    token = form_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": "staff@example.com", "password": "pw-staff", "csrf_token": token}
    )
    assert response.status_code == 302
    return client


class TestCsrf:
    """Forms and htmx posts need the CSRF token; it does not expire while the page is open."""

    def test_the_login_form_needs_its_token(self, csrf_app):
        client = csrf_app.test_client()
        client.get("/login")
        response = client.post(
            "/login", data={"email": "staff@example.com", "password": "pw-staff"}
        )
        assert response.status_code == 400
        assert client.get("/jobs/").status_code == 302

    def test_a_form_post_without_the_token_is_refused(self, csrf_app):
        client = csrf_login(csrf_app)
        assert client.post("/nursery/potting-lots/print", data={}).status_code == 400
        with csrf_app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    def test_a_form_post_with_the_pages_token_works(self, csrf_app):
        client = csrf_login(csrf_app)
        html = client.get("/nursery/potting-lots").get_data(as_text=True)
        print_form = Page(html).find("form", id="print-form")[0]
        assert print_form["attrs"]["action"] == "/nursery/potting-lots/print"
        response = client.post("/nursery/potting-lots/print", data={"csrf_token": form_token(html)})
        assert response.status_code == 303

    def test_an_htmx_post_sends_the_token_from_hx_headers(self, csrf_app):
        client = csrf_login(csrf_app)
        job_id = make_job(csrf_app)
        page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        token = body_token(page)
        assert client.post(f"/jobs/{job_id}/cancel", headers=htmx()).status_code == 400
        assert job_row(csrf_app, job_id).status == "queued"
        response = client.post(f"/jobs/{job_id}/cancel", headers=htmx(**{"X-CSRFToken": token}))
        assert response.status_code == 200 and job_row(csrf_app, job_id).status == "cancelled"

    def test_a_token_from_the_wrong_session_is_refused(self, csrf_app):
        stranger = csrf_login(csrf_app)
        foreign = body_token(stranger.get("/jobs/").get_data(as_text=True))
        client = csrf_login(csrf_app)
        job_id = make_job(csrf_app)
        response = client.post(f"/jobs/{job_id}/cancel", headers=htmx(**{"X-CSRFToken": foreign}))
        assert response.status_code == 400

    def test_the_token_limit_is_off(self, csrf_app):
        assert csrf_app.config["WTF_CSRF_TIME_LIMIT"] is None

    def test_a_page_left_open_all_day_can_still_post(self, csrf_app, monkeypatch):
        import itsdangerous.timed

        clock = {"now": time.time()}
        monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: clock["now"])
        client = csrf_login(csrf_app)
        job_id = make_job(csrf_app)
        page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        clock["now"] += 8 * 3600  # the page polls in the morning …
        assert client.get(f"/jobs/{job_id}/status", headers=htmx()).status_code == 200
        clock["now"] += 8 * 3600  # … and Cancel is pressed in the evening, 16 h after login
        response = client.post(
            f"/jobs/{job_id}/cancel", headers=htmx(**{"X-CSRFToken": body_token(page)})
        )
        assert response.status_code == 200 and job_row(csrf_app, job_id).status == "cancelled"

    def test_an_htmx_post_after_logout_elsewhere_is_401_to_login_not_a_csrf_error(self, csrf_app):
        client = csrf_login(csrf_app)
        job_id = make_job(csrf_app)
        page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        client.post("/logout", data={"csrf_token": form_token(page)})  # in another tab
        response = client.post(
            f"/jobs/{job_id}/cancel",
            headers=htmx(
                **{
                    "X-CSRFToken": body_token(page),
                    "HX-Current-URL": f"http://localhost/jobs/{job_id}",
                }
            ),
        )
        assert response.status_code == 401
        target = urlsplit(response.headers["HX-Redirect"])
        assert target.path == "/login" and parse_qs(target.query)["next"] == [f"/jobs/{job_id}"]

    def test_an_htmx_post_after_the_session_expired_is_401_to_login_not_a_csrf_error(
        self, csrf_app
    ):
        client = csrf_login(csrf_app)
        job_id = make_job(csrf_app)
        page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        for cookie in ("session", "remember_token"):  # gone, and the CSRF secret in it with it
            client.delete_cookie(cookie)
        response = client.post(
            f"/jobs/{job_id}/cancel",
            headers=htmx(
                **{
                    "X-CSRFToken": body_token(page),
                    "HX-Current-URL": f"http://localhost/jobs/{job_id}",
                }
            ),
        )
        assert response.status_code == 401
        assert urlsplit(response.headers["HX-Redirect"]).path == "/login"
        plain = client.post(
            f"/jobs/{job_id}/cancel",
            data={"csrf_token": form_token(page)},
            headers={"Referer": f"http://localhost/jobs/{job_id}"},
        )
        assert plain.status_code == 302
        assert parse_qs(urlsplit(plain.headers["Location"]).query)["next"] == [f"/jobs/{job_id}"]
        assert job_row(csrf_app, job_id).status == "queued"

    def test_the_api_needs_no_csrf_token(self, csrf_app):
        from webapp.auth import create_token
        from webapp.models import User

        with csrf_app.app_context():
            token = create_token(db.session.scalars(sa.select(User)).one())
        response = csrf_app.test_client().post(
            "/api/v1/jobs",
            headers={"Authorization": f"Bearer {token}"},
            json={"kind": KIND, "params": {"lot_ids": [1]}},
        )
        assert response.status_code == 202


@pytest.fixture
def table(make_app):
    """40 lots, pages of 10, a logged-in client."""
    from webapp.nursery.demo import seed_lots

    app = make_app(PAGE_SIZE=10)
    with app.app_context():
        add_user()
        seed_lots(40)
    client = app.test_client()
    client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
    return app, client


def lots_where(app, *conditions) -> list[PottingLot]:
    with app.app_context():
        found = db.session.scalars(
            sa.select(PottingLot).where(*conditions).order_by(PottingLot.lot_number)
        ).all()
        db.session.expunge_all()
        return found


def table_rows(html: str) -> list[str]:
    """The lot numbers of the rows shown (the value of each row's checkbox is the lot id)."""
    return [e["attrs"]["value"] for e in Page(html).find("input", type="checkbox", name="lot_id")]


def print_button(html: str) -> dict:
    """The filtered print (the main button while no row is ticked)."""
    buttons = Page(html).find("button", data_print_filtered=True)
    assert len(buttons) == 1
    return buttons[0]


class TestPottingLotTable:
    """Filters are GET parameters named like the API's keys; print says how many and prints all."""

    def test_the_filter_form_uses_the_api_filter_keys_as_get_parameters(self, table):
        _, client = table
        page = Page(client.get("/nursery/potting-lots").get_data(as_text=True))
        form = [f for f in page.find("form") if f["attrs"].get("method", "get").lower() == "get"][0]
        assert form["attrs"]["action"] == "/nursery/potting-lots"
        names = {e["attrs"].get("name") for e in page.find() if e["tag"] in ("input", "select")}
        assert {"q", "lot_number", "pot_size", "location", "week"} <= names

    @pytest.mark.parametrize(
        "args, condition",
        [
            ({"pot_size": "P9"}, lambda: PottingLot.pot_size == "P9"),
            ({"location": "Schaduwhal"}, lambda: PottingLot.location == "Schaduwhal"),
            ({"q": "rosa"}, lambda: PottingLot.plant_name.ilike("%rosa%")),
            ({"lot_number": "P"}, lambda: PottingLot.lot_number.like("P%")),
        ],
    )
    def test_a_filter_selects_its_rows_and_the_print_button_counts_them(
        self, table, args, condition
    ):
        app, client = table
        expected = lots_where(app, condition())
        html = client.get("/nursery/potting-lots", query_string=args).get_data(as_text=True)
        assert table_rows(html) == [str(lot.id) for lot in expected[:10]]
        button = print_button(html)
        assert f"({len(expected)} label" in button["text"] and "disabled" not in button["attrs"]
        assert (f"{len(expected)} potting lot" in html) if expected else True

    def test_the_week_filter_selects_one_iso_week(self, table):
        app, client = table
        some = lots_where(app)[0]
        year, week, _ = some.potting_date.isocalendar()
        label = f"{year}-W{week:02d}"
        html = client.get("/nursery/potting-lots", query_string={"week": label}).get_data(
            as_text=True
        )
        expected = [
            lot for lot in lots_where(app) if lot.potting_date.isocalendar()[:2] == (year, week)
        ]
        assert f"({len(expected)} label" in print_button(html)["text"]
        assert str(some.id) in table_rows(html) or len(expected) > 10

    def test_a_lower_case_week_is_understood(self, table):
        app, client = table
        some = lots_where(app)[0]
        year, week, _ = some.potting_date.isocalendar()
        upper = client.get("/nursery/potting-lots", query_string={"week": f"{year}-W{week:02d}"})
        lower = client.get("/nursery/potting-lots", query_string={"week": f"{year}-w{week:02d}"})
        rows = table_rows(upper.get_data(as_text=True))
        assert rows and table_rows(lower.get_data(as_text=True)) == rows

    def test_the_print_form_carries_the_filters_of_the_page(self, table):
        _, client = table
        html = client.get("/nursery/potting-lots?pot_size=P9&q=a").get_data(as_text=True)
        form = Page(html)
        hidden = {
            e["attrs"]["name"]: e["attrs"]["value"]
            for e in form.find("input", type="hidden")
            if e["attrs"].get("name") in ("q", "pot_size", "location", "week", "lot_number")
        }
        assert hidden == {"pot_size": "P9", "q": "a"}

    def test_pages_of_rows_and_the_count_of_all(self, table):
        app, client = table
        every = [str(lot.id) for lot in lots_where(app)]
        first = client.get("/nursery/potting-lots").get_data(as_text=True)
        assert table_rows(first) == every[:10]
        assert "40 potting lots" in first and "(40 labels)" in print_button(first)["text"]
        next_links = Page(first).find("a", rel="next")
        assert next_links and "page=2" in next_links[0]["attrs"]["href"]
        last = client.get("/nursery/potting-lots?page=4").get_data(as_text=True)
        assert table_rows(last) == every[30:40]
        beyond = client.get("/nursery/potting-lots?page=99").get_data(as_text=True)
        assert table_rows(beyond) == every[30:40]
        assert client.get("/nursery/potting-lots?page=abc").status_code == 200

    def test_pagination_links_keep_the_filters(self, table):
        app, client = table
        html = client.get("/nursery/potting-lots?lot_number=P").get_data(as_text=True)
        link = Page(html).find("a", rel="next")[0]["attrs"]["href"]
        assert parse_qs(urlsplit(link).query) == {"lot_number": ["P"], "page": ["2"]}

    def test_print_is_disabled_with_a_message_when_nothing_matches(self, table):
        _, client = table
        html = client.get("/nursery/potting-lots?q=zzz-nothing").get_data(as_text=True)
        button = print_button(html)
        assert "disabled" in button["attrs"] and "Nothing to print" in button["text"]
        assert "nothing to print" in html
        assert table_rows(html) == []

    @pytest.mark.parametrize("week", ["48", "2026-W60", "2026-48", "W48-2026"])
    def test_a_bad_week_shows_a_clear_message_and_prints_nothing(self, table, week):
        _, client = table
        response = client.get("/nursery/potting-lots", query_string={"week": week})
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "2026-W48" in html and ("is not like" in html or "has no ISO week" in html)
        assert "disabled" in print_button(html)["attrs"]
        assert table_rows(html) == []
        week_input = Page(html).find("input", name="week")[0]
        assert week_input["attrs"]["value"] == week  # kept, so it can be corrected

    def test_an_empty_table_offers_the_import(self, make_app):
        app = make_app()
        with app.app_context():
            add_user()
        client = app.test_client()
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        html = client.get("/nursery/potting-lots").get_data(as_text=True)
        assert "/nursery/potting-lots/import" in html
        assert "disabled" in print_button(html)["attrs"]


class TestPreview:
    """The label preview is a PNG of the first label the filters select."""

    def test_the_preview_is_a_png(self, table):
        _, client = table
        response = client.get("/nursery/potting-lots/preview.png?pot_size=P9")
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.data.startswith(b"\x89PNG\r\n\x1a\n") and len(response.data) > 200

    def test_no_matching_lot_or_a_bad_filter_gives_no_image(self, table):
        _, client = table
        assert client.get("/nursery/potting-lots/preview.png?q=zzz-nothing").status_code == 204
        assert client.get("/nursery/potting-lots/preview.png?week=nope").status_code == 204

    def test_the_preview_needs_a_login(self, site, client):
        assert client.get("/nursery/potting-lots/preview.png").status_code == 302


class TestEscaping:
    """HTML in data is shown as text everywhere."""

    @pytest.fixture
    def evil(self, site) -> int:
        with site.app_context():
            from datetime import date

            lot = PottingLot(
                lot_number="X<b>1</b>",
                plant_name=XSS,
                pot_size="<i>P9</i>",
                quantity=1,
                potting_date=date(2026, 11, 23),
                location='"><img src=x onerror=alert(2)>',
                customer="<u>Ünal</u>",
            )
            db.session.add(lot)
            db.session.commit()
            return lot.id

    def _assert_escaped(self, html: str) -> None:
        for raw in (XSS, "<b>1</b>", "<i>P9</i>", "<img src=x", "<u>Ünal</u>"):
            assert raw not in html, raw

    def test_the_table_escapes_every_field(self, site, logged_in, evil):
        html = logged_in.get("/nursery/potting-lots", query_string={"q": "script"}).get_data(
            as_text=True
        )
        self._assert_escaped(html)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert str(evil) in table_rows(html)

    def test_the_filter_values_are_escaped_in_the_form_and_messages(self, site, logged_in, evil):
        html = logged_in.get(
            "/nursery/potting-lots", query_string={"q": XSS, "week": XSS}
        ).get_data(as_text=True)
        assert XSS not in html

    def test_job_pages_escape_the_filters_and_lot_numbers(self, site, logged_in, evil, stub_worker):
        response = logged_in.post("/nursery/potting-lots/print", data={"q": XSS})
        assert response.status_code == 303
        job_id = response.headers["Location"].rsplit("/", 1)[1]
        for html in (
            logged_in.get(f"/jobs/{job_id}").get_data(as_text=True),
            logged_in.get("/jobs/").get_data(as_text=True),
        ):
            self._assert_escaped(html)
        stub_worker()
        assert job_row(site, job_id).status == "done"  # and the label itself renders
        for html in (
            logged_in.get(f"/jobs/{job_id}").get_data(as_text=True),
            logged_in.get(f"/jobs/{job_id}/status").get_data(as_text=True),
            logged_in.get("/jobs/").get_data(as_text=True),
        ):
            self._assert_escaped(html)

    def test_a_failed_jobs_error_text_is_escaped(self, site, logged_in):
        job_id = make_job(site)
        with site.app_context():
            claim(job_id).fail(Msg("unexpected", {"reason": f"Lot {XSS} was deleted."}))
        for html in (
            logged_in.get(f"/jobs/{job_id}").get_data(as_text=True),
            logged_in.get(f"/jobs/{job_id}/status").get_data(as_text=True),
        ):
            assert XSS not in html and "Unexpected error: Lot &lt;script&gt;" in html


class TestHealth:
    """/healthz: 200 when the database and the broker answer, 503 JSON otherwise."""

    def test_healthy_with_the_stub_broker(self, client):
        response = client.get("/healthz")
        assert response.status_code == 200 and response.get_json()["status"] == "ok"
        assert response.get_json()["checks"]["database"] == "ok"

    def test_an_unreachable_database_is_503_json(self, tmp_path):
        from tests.conftest import app_config
        from webapp import create_app

        (tmp_path / "not-a-folder").write_text("")  # so SQLite cannot open a file below it
        app = create_app(
            app_config(
                tmp_path / "data", DATABASE_URL=f"sqlite:///{tmp_path}/not-a-folder/pressroom.db"
            )
        )
        try:
            response = app.test_client().get("/healthz")
        finally:
            with app.app_context():
                db.engine.dispose()
        assert response.status_code == 503 and response.is_json
        assert response.get_json()["checks"]["database"].startswith("error")

    def test_an_unreachable_redis_is_503_json(self, make_app, tmp_path):
        app = make_app(BROKER="redis", REDIS_URL=f"unix://{tmp_path}/no-redis-here.sock")
        response = app.test_client().get("/healthz")
        assert response.status_code == 503 and response.is_json
        body = response.get_json()
        assert body["checks"]["redis"].startswith("error") and body["checks"]["database"] == "ok"

    def test_healthz_needs_no_login(self, make_app):
        assert make_app().test_client().get("/healthz").status_code == 200
