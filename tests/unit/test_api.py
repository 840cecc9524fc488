"""The JSON API under /api/v1 (DESIGN §4): Bearer tokens only, JSON answers only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import add_user, join_all
from webapp.auth import create_token
from webapp.extensions import db
from webapp.models import Artifact, Job, JobStatus, Role, utcnow

KIND = "potting_lot_labels"
JOB_KEYS = {
    "id",
    "kind",
    "params",
    "status",
    "origin",
    "progress",
    "items",
    "eta_seconds",
    "attempts",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "file",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def queued(app) -> int:
    return len(app.extensions["pressroom.broker"].queues["pressroom"].queue)


def job_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Job.id)))


def assert_error(response, status: int, code: str | None = None) -> dict:
    """Every error under /api/ is {"error": {"code", "message"[, "fields"]}} with the right
    status; `fields` maps each bad field to its English message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.headers.get("Content-Type")
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if "fields" in error:
        assert error["fields"] and all(
            isinstance(name, str) and isinstance(text, str) and text
            for name, text in error["fields"].items()
        )
    if code:
        assert error["code"] == code
    return error


@pytest.fixture
def api(client, token):
    """A test client that sends the staff user's token with every request."""

    class Api:
        def get(self, path: str, **kw):
            return client.get(path, headers=bearer(token), **kw)

        def post(self, path: str, **kw):
            return client.post(path, headers=bearer(token), **kw)

        def submit(self, params: dict, kind: str = KIND):
            return client.post(
                "/api/v1/jobs", json={"kind": kind, "params": params}, headers=bearer(token)
            )

    return Api()


def other_token(app, email: str = "other@example.com", role: Role = Role.STAFF) -> str:
    with app.app_context():
        return create_token(add_user(email, role=role))


class TestAuthentication:
    """Bearer tokens only; a missing or bad token is 401 JSON, never a redirect."""

    @pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/abc", "/api/v1/jobs/abc/file"])
    def test_a_request_without_a_token_is_401_json(self, client, token, path):
        response = client.get(path)
        assert_error(response, 401, "unauthorized")
        assert "Location" not in response.headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    @pytest.mark.parametrize(
        "header", ["Bearer nonsense", "Bearer ", "Basic c3RhZmY6cHc=", "prt_x"]
    )
    def test_a_bad_token_is_401_json(self, client, token, header):
        response = client.post(
            "/api/v1/jobs",
            json={"kind": KIND, "params": {"lot_ids": [1]}},
            headers={"Authorization": header},
        )
        assert_error(response, 401, "unauthorized")

    def test_a_session_cookie_is_not_accepted(self, app, client, auth, token):
        assert auth.login().status_code == 302  # the browser session is valid for the UI …
        assert client.get("/jobs/").status_code == 200
        response = client.get("/api/v1/jobs")  # … but not for the API
        assert_error(response, 401)
        response = client.post("/api/v1/jobs", json={"kind": KIND, "params": {"lot_ids": [1]}})
        assert_error(response, 401)
        assert job_count(app) == 0

    def test_a_valid_token_works_without_csrf_even_when_csrf_is_on(self, make_app):
        app = make_app(WTF_CSRF_ENABLED=True)
        with app.app_context():
            token = create_token(add_user())
            from webapp.nursery.demo import seed_lots

            seed_lots(3)
        response = app.test_client().post(
            "/api/v1/jobs", json={"kind": KIND, "params": {"lot_ids": [1]}}, headers=bearer(token)
        )
        assert response.status_code == 202


class TestSubmit:
    """POST /api/v1/jobs: 202 new, 200 identical live or done job, 422 invalid params."""

    def test_a_new_job_is_202_with_its_json_and_one_message_sent(self, app, api):
        response = api.submit({"lot_ids": [3, 1, 2]})
        assert response.status_code == 202
        body = response.get_json()
        assert body["status"] == "queued" and body["kind"] == KIND
        assert body["progress"] == {"done": 0, "total": 3, "unit": "label", "step": "waiting"}
        assert body["origin"] == "api" and sorted(body["params"]["lot_ids"]) == [1, 2, 3]
        assert response.headers["Location"].endswith(f"/api/v1/jobs/{body['id']}")
        assert queued(app) == 1

    def test_a_new_job_taken_by_a_worker_at_once_is_still_answered_202_queued(
        self, app, api, monkeypatch
    ):
        """The answer is the job as committed, read back before its message goes out: a worker
        that claims it the moment it is sent does not turn the 202 into a 200 `running`."""
        from sqlalchemy.orm import Session

        from webapp.jobs import queues, transitions

        send = queues.send

        def send_and_claim(actor, job_id, **kw):
            sent = send(actor, job_id, **kw)
            with Session(db.engine) as worker, worker.begin():  # another process's connection
                assert transitions.claim(worker, job_id, "elsewhere:1") is not None
            return sent

        monkeypatch.setattr(queues, "send", send_and_claim)
        response = api.submit({"lot_ids": [1]})
        assert response.status_code == 202
        assert response.get_json()["status"] == "queued" and response.get_json()["attempts"] == 0
        job_id = response.get_json()["id"]
        assert api.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "running"

    def test_an_identical_live_job_is_returned_with_200(self, app, api):
        first = api.submit({"lot_ids": [1, 2]})
        again = api.submit({"lot_ids": [2, 1]})
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.get_json()["id"] == first.get_json()["id"]
        assert job_count(app) == 1 and queued(app) == 1

    def test_a_filter_selecting_the_same_lots_is_the_same_job(self, api):
        by_ids = api.submit({"lot_ids": list(range(1, 41))})
        by_filter = api.submit({"filter": {}})
        assert (
            by_filter.status_code == 200 and by_filter.get_json()["id"] == by_ids.get_json()["id"]
        )

    def test_an_identical_finished_file_is_answered_200_done_at_once(self, app, api, stub_worker):
        first = api.submit({"lot_ids": [5]}).get_json()
        stub_worker()
        assert api.get(f"/api/v1/jobs/{first['id']}").get_json()["status"] == "done"
        again = api.submit({"lot_ids": [5]})
        assert again.status_code == 200
        body = again.get_json()
        assert body["status"] == "done" and body["file"]["sha256"]
        assert queued(app) == 0

    @pytest.mark.parametrize(
        "params, field",
        [
            ({}, "lot_ids"),
            ({"lot_ids": []}, "lot_ids"),
            ({"lot_ids": "1,2"}, "lot_ids"),
            ({"lot_ids": [999]}, "lot_ids"),
            ({"lot_ids": [1], "copies": 0}, "copies"),
            ({"lot_ids": [1], "copies": "2"}, "copies"),
            ({"lot_ids": [1], "layout": "poster"}, "layout"),
            ({"filter": {"week": "2026-48"}}, "filter.week"),
            ({"filter": {"week": "2026-W60"}}, "filter.week"),
            ({"filter": {"colour": "red"}}, "filter.colour"),
            ({"filter": {"q": "no plant is called like this"}}, "filter"),
            ({"lot_ids": [1], "shape": "round"}, "shape"),
            ({"lot_ids": [10**20]}, "lot_ids"),  # past a database integer: no overflow error
            ({"lot_ids": [0]}, "lot_ids"),
            ({"filter": {"q": "a\x00b"}}, "filter.q"),  # NUL: PostgreSQL refuses it in text
            ({"filter": {"q": 0}}, "filter.q"),
        ],
    )
    def test_invalid_params_are_422_naming_the_field_and_nothing_is_queued(
        self, app, api, params, field
    ):
        error = assert_error(api.submit(params), 422, "invalid_params")
        assert list(error["fields"]) == [field]
        assert error["message"] == error["fields"][field]  # the (first) field's own message
        assert job_count(app) == 0 and queued(app) == 0

    @pytest.mark.parametrize(
        "params, field, message",
        [
            ({"lot_ids": [1], "copies": 0}, "copies", "Enter 1 or more."),
            ({"lot_ids": [1], "copies": 101}, "copies", "Enter 100 or less."),
            ({"lot_ids": [1], "copies": True}, "copies", "Enter a whole number."),
            ({"lot_ids": [1], "shape": "round"}, "shape", "Unknown field."),
            ({"lot_ids": [999]}, "lot_ids", "Unknown potting lots: 999."),
        ],
    )
    def test_a_fields_message_is_english_text_a_person_can_act_on(
        self, api, params, field, message
    ):
        assert assert_error(api.submit(params), 422)["fields"] == {field: message}

    def test_every_bad_field_is_named_at_once(self, api):
        error = assert_error(api.submit({"lot_ids": [1], "copies": 0, "offset_x": 20}), 422)
        assert set(error["fields"]) == {"copies", "offset_x"}

    def test_an_unknown_kind_is_422(self, app, api):
        error = assert_error(api.submit({"lot_ids": [1]}, kind="fax"), 422)
        assert list(error["fields"]) == ["kind"] and KIND in error["message"]

    def test_params_that_are_not_an_object_are_422(self, api):
        response = api.post("/api/v1/jobs", json={"kind": KIND, "params": [1, 2]})
        assert list(assert_error(response, 422)["fields"]) == ["params"]

    @pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
    def test_a_body_that_is_not_a_json_object_is_400(self, api, body):
        response = api.post("/api/v1/jobs", data=body, content_type="application/json")
        assert_error(response, 400)

    def test_a_body_over_the_size_limit_is_413_json_and_nothing_queued(self, make_app):
        app = make_app(MAX_CONTENT_LENGTH=4096)
        with app.app_context():
            token = create_token(add_user())
        client = app.test_client()
        big = {"kind": KIND, "params": {"lot_ids": list(range(1, 3000))}}
        response = client.post("/api/v1/jobs", json=big, headers=bearer(token))
        assert_error(response, 413)
        assert job_count(app) == 0 and queued(app) == 0

    def test_a_batch_over_the_label_limit_is_422_and_nothing_queued(self, make_app):
        app = make_app(MAX_LABELS=30)
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            token = create_token(add_user())
            seed_lots(10)
        client = app.test_client()
        response = client.post(
            "/api/v1/jobs",
            headers=bearer(token),
            json={"kind": KIND, "params": {"filter": {}, "copies": 4}},
        )
        error = assert_error(response, 422)
        assert "30" in error["message"]
        assert job_count(app) == 0 and queued(app) == 0


class TestJobJson:
    """The job JSON has exactly the keys of DESIGN §4."""

    def test_a_queued_job_has_exactly_the_design_keys(self, api):
        body = api.submit({"lot_ids": [1]}).get_json()
        assert set(body) == JOB_KEYS
        assert body["progress"] == {"done": 0, "total": 1, "unit": "label", "step": "waiting"}
        assert body["origin"] == "api" and body["items"] is None
        assert body["params"] == {
            "lot_ids": [1],
            "layout": body["params"]["layout"],
            "start_position": 1,
            "copies": 1,
            "offset_x": 0.0,
            "offset_y": 0.0,
            "locale": "en",  # the numbers on the labels: the reader's language
        }  # normalised: every option, defaults filled in
        assert body["file"] is None and body["error"] is None and body["eta_seconds"] is None
        assert body["attempts"] == 0 and body["started_at"] is None and body["finished_at"] is None
        assert body["created_at"].endswith("Z")

    def test_a_done_job_has_its_file_with_a_url_under_site_url(self, make_app):
        app = make_app(SITE_URL="https://press.example.org/")
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            token = create_token(add_user())
            seed_lots(2)
        import dramatiq

        import workers.actors  # noqa: F401
        from workers.broker import setup

        broker = setup(app)
        worker = dramatiq.Worker(broker, worker_threads=1)
        worker.start()
        try:
            client = app.test_client()
            job_id = client.post(
                "/api/v1/jobs",
                headers=bearer(token),
                json={"kind": KIND, "params": {"lot_ids": [1, 2]}},
            ).get_json()["id"]
            join_all(broker, worker)
        finally:
            worker.stop()
        body = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).get_json()
        assert set(body) == JOB_KEYS and body["status"] == "done"
        assert set(body["file"]) == {"name", "size", "sha256", "url"}
        assert body["file"]["url"] == f"https://press.example.org/api/v1/jobs/{job_id}/file"
        assert body["file"]["name"].startswith("oppotpartijen_") and body["file"]["name"].endswith(
            ".pdf"
        )
        assert body["file"]["size"] > 0 and len(body["file"]["sha256"]) == 64
        assert body["progress"]["done"] == body["progress"]["total"] == 2
        assert body["attempts"] == 1 and body["started_at"] and body["finished_at"]

    def test_job_ids_are_long_random_strings(self, api):
        ids = [api.submit({"lot_ids": [n]}).get_json()["id"] for n in range(1, 6)]
        assert len(set(ids)) == 5
        assert all(isinstance(i, str) and len(i) >= 16 and not i.isdigit() for i in ids)
        prefixes = {i[:4] for i in ids}
        assert len(prefixes) > 1  # not a counter or a timestamp with a common prefix


class TestGetAndList:
    """GET one job (404 when unknown or not yours) and the caller's jobs, newest first."""

    def test_the_owner_gets_the_job(self, api):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        response = api.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200 and response.get_json()["id"] == job_id

    def test_an_unknown_id_is_404(self, api):
        assert_error(api.get("/api/v1/jobs/doesnotexist"), 404, "not_found")

    def test_another_users_job_is_404_but_an_admin_sees_it(self, app, client, api):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        other = other_token(app)
        assert_error(client.get(f"/api/v1/jobs/{job_id}", headers=bearer(other)), 404)
        assert_error(client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(other)), 404)
        assert_error(client.post(f"/api/v1/jobs/{job_id}/retry", headers=bearer(other)), 404)
        assert_error(client.get(f"/api/v1/jobs/{job_id}/file", headers=bearer(other)), 404)
        admin = other_token(app, "admin@example.com", Role.ADMIN)
        assert client.get(f"/api/v1/jobs/{job_id}", headers=bearer(admin)).status_code == 200

    def test_owner_any_lists_everyones_and_system_jobs_for_an_admin_only(self, app, client, api):
        mine = api.submit({"lot_ids": [1]}).get_json()["id"]
        with app.app_context():
            system = Job(owner_id=None, origin="schedule", kind=KIND, params={}, status="done")
            db.session.add(system)
            db.session.commit()
            system_id = system.id
        admin = other_token(app, "admin@example.com", Role.ADMIN)
        listed = client.get("/api/v1/jobs?owner=any", headers=bearer(admin)).get_json()["jobs"]
        assert {job["id"] for job in listed} == {mine, system_id}
        assert {job["origin"] for job in listed} == {"api", "schedule"}
        assert client.get("/api/v1/jobs", headers=bearer(admin)).get_json()["jobs"] == []
        assert_error(api.get("/api/v1/jobs?owner=any"), 403, "forbidden")
        assert_error(api.get("/api/v1/jobs?owner=bob"), 422, "invalid_params")

    def test_an_internal_chunk_row_is_404(self, app, api):
        parent = api.submit({"lot_ids": [1]}).get_json()["id"]
        with app.app_context():
            parent_job = db.session.get(Job, parent)
            chunk = Job(
                owner_id=parent_job.owner_id,
                kind=KIND,
                params={},
                parent_id=parent,
                chunk_index=0,
                status=JobStatus.QUEUED,
            )
            db.session.add(chunk)
            db.session.commit()
            chunk_id = chunk.id
        assert_error(api.get(f"/api/v1/jobs/{chunk_id}"), 404)
        assert [j["id"] for j in api.get("/api/v1/jobs").get_json()["jobs"]] == [parent]

    def test_the_list_is_the_callers_jobs_newest_first(self, app, client, api):
        ids = [api.submit({"lot_ids": [n]}).get_json()["id"] for n in (1, 2, 3)]
        other = other_token(app)
        client.post(
            "/api/v1/jobs", headers=bearer(other), json={"kind": KIND, "params": {"lot_ids": [4]}}
        )
        response = api.get("/api/v1/jobs")
        assert response.status_code == 200
        jobs = response.get_json()["jobs"]
        assert [j["id"] for j in jobs] == list(reversed(ids))
        assert all(set(j) == JOB_KEYS for j in jobs)

    def test_the_list_filters_by_status_and_kind_and_limits(self, api):
        ids = [api.submit({"lot_ids": [n]}).get_json()["id"] for n in (1, 2, 3)]
        api.post(f"/api/v1/jobs/{ids[0]}/cancel")
        cancelled = api.get("/api/v1/jobs?status=cancelled").get_json()["jobs"]
        assert [j["id"] for j in cancelled] == [ids[0]]
        queued_ids = [j["id"] for j in api.get("/api/v1/jobs?status=queued").get_json()["jobs"]]
        assert queued_ids == [ids[2], ids[1]]
        assert len(api.get(f"/api/v1/jobs?kind={KIND}").get_json()["jobs"]) == 3
        limited = api.get("/api/v1/jobs?limit=2").get_json()["jobs"]
        assert [j["id"] for j in limited] == [ids[2], ids[1]]
        assert len(api.get("/api/v1/jobs?status=&kind=&limit=").get_json()["jobs"]) == 3

    @pytest.mark.parametrize(
        "query, field",
        [
            ("status=finished", "status"),
            ("status=QUEUED", "status"),
            ("limit=abc", "limit"),
            ("limit=0", "limit"),
            ("limit=-5", "limit"),
            ("limit=100000", "limit"),
            ("kind=fax", "kind"),
        ],
    )
    def test_bad_list_parameters_are_422(self, api, query, field):
        error = assert_error(api.get(f"/api/v1/jobs?{query}"), 422, "invalid_params")
        assert list(error["fields"]) == [field]


class TestCancelAndRetry:
    """Cancel: 200, or 409 once final. Retry: 202 from failed/cancelled/expired, else 409."""

    def test_cancel_is_200_with_the_cancelled_job(self, api):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        response = api.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200
        assert response.get_json()["status"] == "cancelled" and response.get_json()["finished_at"]

    def test_cancelling_a_final_job_is_409(self, api, stub_worker):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        api.post(f"/api/v1/jobs/{job_id}/cancel")
        assert_error(api.post(f"/api/v1/jobs/{job_id}/cancel"), 409, "conflict")
        done_id = api.submit({"lot_ids": [2]}).get_json()["id"]
        stub_worker()
        assert_error(api.post(f"/api/v1/jobs/{done_id}/cancel"), 409)

    def test_retry_of_a_cancelled_job_is_202_and_it_runs(self, app, api, stub_worker):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        api.post(f"/api/v1/jobs/{job_id}/cancel")
        response = api.post(f"/api/v1/jobs/{job_id}/retry")
        assert response.status_code == 202
        assert response.get_json()["status"] == "queued" and response.get_json()["attempts"] == 0
        stub_worker()
        assert api.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "done"

    def test_retry_of_a_failed_job_is_202(self, app, api):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        from webapp.jobs.lease import claim
        from webapp.messages import Msg

        with app.app_context():
            claim(job_id).fail(Msg("lot_deleted", {"id": 1}))
        assert api.get(f"/api/v1/jobs/{job_id}").get_json()["error"] == {
            "code": "lot_deleted",
            "message": "Potting lot #1 was deleted after this job was started; "
            "print the labels again.",
        }
        response = api.post(f"/api/v1/jobs/{job_id}/retry")
        assert response.status_code == 202
        assert response.get_json()["status"] == "queued" and response.get_json()["error"] is None

    def test_retry_of_a_queued_or_done_job_is_409(self, api, stub_worker):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        assert_error(api.post(f"/api/v1/jobs/{job_id}/retry"), 409)
        stub_worker()
        assert_error(api.post(f"/api/v1/jobs/{job_id}/retry"), 409)

    def test_retry_of_an_unknown_job_is_404(self, api):
        assert_error(api.post("/api/v1/jobs/nope/retry"), 404)


class TestFile:
    """GET …/file: the file when done, 409 before, 410 once expired (headers: test_downloads)."""

    def test_the_file_of_a_done_job_is_a_pdf(self, api, stub_worker):
        job_id = api.submit({"lot_ids": [1, 2]}).get_json()["id"]
        assert_error(api.get(f"/api/v1/jobs/{job_id}/file"), 409, "conflict")
        stub_worker()
        response = api.get(f"/api/v1/jobs/{job_id}/file")
        assert response.status_code == 200 and response.data.startswith(b"%PDF")
        assert response.mimetype == "application/pdf"

    def test_a_cancelled_job_has_no_file_409(self, api):
        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        api.post(f"/api/v1/jobs/{job_id}/cancel")
        assert_error(api.get(f"/api/v1/jobs/{job_id}/file"), 409)

    def test_an_expired_file_is_410(self, app, api, stub_worker):
        from webapp.jobs.reaper import expire

        job_id = api.submit({"lot_ids": [1]}).get_json()["id"]
        stub_worker()
        with app.app_context():
            db.session.execute(
                sa.update(Artifact).values(expires_at=utcnow() - timedelta(seconds=1))
            )
            db.session.commit()
            assert expire()["jobs"] == 1
        assert api.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "expired"
        assert_error(api.get(f"/api/v1/jobs/{job_id}/file"), 410, "expired")


class TestErrorsAreJson:
    """Every error under /api/ is JSON: routing 404 and 405 included."""

    @pytest.mark.parametrize("with_token", [True, False])
    @pytest.mark.parametrize(
        "method, path, status",
        [
            ("GET", "/api/v1/nothing-here", 404),
            ("GET", "/api/v2/jobs", 404),
            ("GET", "/api/", 404),
            ("DELETE", "/api/v1/jobs", 405),
            ("PUT", "/api/v1/jobs/abc", 405),
            ("GET", "/api/v1/jobs/abc/cancel", 405),
            ("POST", "/api/v1/jobs/abc/file", 405),
        ],
    )
    def test_routing_errors_are_json(self, client, token, with_token, method, path, status):
        headers = bearer(token) if with_token else {}
        response = client.open(path, method=method, headers=headers)
        assert_error(response, status)
        if status == 405:
            assert method not in response.headers["Allow"] and response.headers["Allow"]

    def test_an_unexpected_error_is_500_json(self, app, api, monkeypatch):
        from webapp.views import api as api_views

        def boom(*args, **kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(api_views.jobs, "list_for", boom)
        error = assert_error(api.get("/api/v1/jobs"), 500, "internal_error")
        assert "disk on fire" not in error["message"]

    def test_errors_outside_the_api_are_pages_not_json(self, client, token):
        # Outside /api/ errors are pages, so the API's rule is not applied site-wide.
        response = client.get("/no-such-page")
        assert response.status_code == 404 and not response.is_json
