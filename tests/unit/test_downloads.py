"""Downloads (DESIGN §4): served from a path with ETag, Range/206/If-Range, Last-Modified and
Content-Disposition; ownership-checked in the UI; the same headers from the API."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from tests.conftest import add_user
from webapp import jobs
from webapp.auth import create_token
from webapp.downloads import content_disposition
from webapp.extensions import db
from webapp.jobs import artifacts
from webapp.jobs.reaper import expire
from webapp.models import Artifact, Job, Role, utcnow

KIND = "potting_lot_labels"
DISPOSITION = re.compile(r"""^attachment; filename="?([^";]+)"?; filename\*=UTF-8''(\S+)$""")


@pytest.fixture
def done(app, stub_worker) -> dict:
    """A finished job of the staff user (lots 1–3), its file's bytes and sha256, and a token."""
    from webapp.nursery.demo import seed_lots

    with app.app_context():
        staff = add_user()
        seed_lots(10)
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2, 3]})
        job_id, token = job.id, create_token(staff)
    stub_worker()
    with app.app_context():
        job = db.session.get(Job, job_id)
        path = artifacts.root() / job.artifact.path
        return {
            "id": job_id,
            "token": token,
            "sha256": job.artifact.sha256,
            "name": job.file_name,
            "data": path.read_bytes(),
            "path": path,
        }


def ui_url(info: dict) -> str:
    return f"/jobs/{info['id']}/download"


def api_url(info: dict) -> str:
    return f"/api/v1/jobs/{info['id']}/file"


@pytest.fixture(params=["ui", "api"])
def fetch(request, client, auth, done):
    """GET the done job's file through the UI (session) or the API (token): same headers."""
    if request.param == "ui":
        auth.login()

        def get(headers: dict | None = None):
            return client.get(ui_url(done), headers=headers or {})
    else:

        def get(headers: dict | None = None):
            return client.get(
                api_url(done),
                headers={"Authorization": f"Bearer {done['token']}", **(headers or {})},
            )

    return get


class TestHeaders:
    """The full answer and its validators."""

    def test_the_whole_file_is_sent_with_etag_last_modified_and_disposition(self, fetch, done):
        response = fetch()
        assert response.status_code == 200
        assert response.data == done["data"] and response.data.startswith(b"%PDF")
        assert response.headers["ETag"] == f'"{done["sha256"]}"'
        assert parsedate_to_datetime(response.headers["Last-Modified"])
        assert response.headers["Accept-Ranges"] == "bytes"
        assert int(response.headers["Content-Length"]) == len(done["data"])
        match = DISPOSITION.match(response.headers["Content-Disposition"])
        assert match, response.headers["Content-Disposition"]
        assert match[1] == done["name"] and unquote(match[2]) == done["name"]
        assert re.fullmatch(r"oppotpartijen_\d\dW\d\d-[1-7]\.pdf", done["name"])

    def test_a_range_request_is_206_with_content_range(self, fetch, done):
        response = fetch({"Range": "bytes=0-99"})
        assert response.status_code == 206
        assert response.data == done["data"][:100]
        assert response.headers["Content-Range"] == f"bytes 0-99/{len(done['data'])}"

    def test_a_suffix_range_resumes_the_tail(self, fetch, done):
        response = fetch({"Range": "bytes=-10"})
        assert response.status_code == 206 and response.data == done["data"][-10:]

    def test_if_range_with_the_current_etag_gives_the_range(self, fetch, done):
        response = fetch({"Range": "bytes=10-19", "If-Range": f'"{done["sha256"]}"'})
        assert response.status_code == 206 and response.data == done["data"][10:20]

    def test_if_range_with_a_stale_etag_gives_the_whole_file(self, fetch, done):
        response = fetch({"Range": "bytes=10-19", "If-Range": '"0123456789abcdef"'})
        assert response.status_code == 200 and response.data == done["data"]

    def test_if_none_match_with_the_etag_is_304(self, fetch, done):
        response = fetch({"If-None-Match": f'"{done["sha256"]}"'})
        assert response.status_code == 304 and response.data == b""

    def test_if_none_match_with_another_etag_is_200(self, fetch, done):
        assert fetch({"If-None-Match": '"other"'}).status_code == 200

    def test_an_unsatisfiable_range_is_416(self, fetch, done):
        response = fetch({"Range": f"bytes={len(done['data']) + 10}-"})
        assert response.status_code == 416


class TestContentDisposition:
    """Both the plain and the RFC 5987 form; the plain one is safe ASCII."""

    def test_a_plain_name_is_the_same_in_both_forms(self):
        value = content_disposition("oppotpartijen_26W48-1.pdf")
        match = DISPOSITION.match(value)
        assert match and match[1] == unquote(match[2]) == "oppotpartijen_26W48-1.pdf"

    def test_a_name_with_diacritics_quotes_and_semicolons_stays_one_header(self):
        name = 'Étiquettes "Königin"; 100%.pdf'
        value = content_disposition(name)
        match = DISPOSITION.match(value)
        assert match, value
        assert match[1].isascii() and '"' not in match[1] and ";" not in match[1]
        assert unquote(match[2]) == name
        assert "\n" not in value and "\r" not in value


class TestStatesAndOwnership:
    """409 not ready, 410 expired, 404 for someone else's job, admins see all."""

    def test_a_job_that_is_not_done_is_409(self, app, client, auth):
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            staff = add_user()
            seed_lots(2)
            job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
            job_id = job.id
        auth.login()
        response = client.get(f"/jobs/{job_id}/download")
        assert response.status_code == 409
        assert "not ready" in response.get_data(as_text=True)

    def test_an_expired_file_is_410_in_the_ui_and_the_api(self, app, client, auth, done):
        with app.app_context():
            db.session.execute(sa.update(Artifact).values(expires_at=utcnow() - timedelta(days=1)))
            db.session.commit()
            assert expire()["jobs"] == 1
        assert not done["path"].exists()
        auth.login()
        assert client.get(ui_url(done)).status_code == 410
        response = client.get(api_url(done), headers={"Authorization": f"Bearer {done['token']}"})
        assert response.status_code == 410 and response.get_json()["error"]["code"] == "expired"

    def test_a_file_removed_from_disk_is_410_not_a_crash(self, client, auth, done):
        done["path"].unlink()
        auth.login()
        assert client.get(ui_url(done)).status_code == 410

    def test_another_users_download_is_404(self, app, client, auth, done):
        with app.app_context():
            add_user("other@example.com", "pw-other")
        auth.login("other@example.com", "pw-other")
        assert client.get(ui_url(done)).status_code == 404

    def test_an_admin_may_download_anyones_file(self, app, client, auth, done):
        with app.app_context():
            add_user("boss@example.com", "pw-boss", Role.ADMIN)
        auth.login("boss@example.com", "pw-boss")
        response = client.get(ui_url(done))
        assert response.status_code == 200 and response.data == done["data"]

    def test_a_download_without_a_session_redirects_to_login(self, client, done):
        response = client.get(ui_url(done))
        assert response.status_code == 302 and "/login" in response.headers["Location"]
