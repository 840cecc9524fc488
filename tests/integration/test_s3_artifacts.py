"""Artifacts on S3 (`ARTIFACTS_URL=s3://…`, DESIGN §5) with real parts: a real S3-protocol
server on localhost (moto's server mode), Redis, Dramatiq workers, gunicorn and the scheduler
(tests/services.py). A label batch (whole, and split into chunks that are merged) and a lab
report go from submit to the bucket; the real web server streams them with ETag, Range,
If-Range and 304; retention deletes old objects; usage counts the bucket."""

from __future__ import annotations

import email
import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pikepdf
import pytest
import sqlalchemy as sa

from tests.conftest import wait_for
from tests.services import Stack, database_url, running_stack
from tests.support.s3server import CREDENTIALS, MotoServer, moto_server
from webapp.extensions import db
from webapp.jobs import artifacts, reaper
from webapp.lab.demo import seed_lab
from webapp.models import Artifact, Job, OutboxItem, Report, utcnow

pytestmark = pytest.mark.integration

BUCKET = "pressroom-files"
PREFIX = "nursery"
CHUNK = 100  # labels per chunk: a batch of 250 is three chunks, merged by a worker


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, s3: MotoServer) -> Iterator[Stack]:
    """The stack of this module (per database, as tests/services.py's), every process and the
    test's own app configured for the bucket through the environment, as a deployment is."""
    database = database_url(request, getattr(request, "param", "sqlite"))
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            **CREDENTIALS,
            "ARTIFACTS_URL": f"s3://{BUCKET}/{PREFIX}",
            "S3_ENDPOINT_URL": s3.endpoint,
        }.items():
            env.setenv(name, value)
        with running_stack(
            processes=2, lots=250, env={"CHUNK_LABELS": str(CHUNK)}, database_url=database
        ) as running:
            yield running


def in_bucket(s3: MotoServer, key: str) -> bytes:
    answer = s3.client().get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")
    return bytes(answer["Body"].read())


def page_count(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def labels(stack: Stack, lot_ids: list[int] | None = None) -> dict:
    params = {"lot_ids": lot_ids} if lot_ids else {"filter": {}}
    answer = stack.api(
        "POST", "/api/v1/jobs", json_body={"kind": "potting_lot_labels", "params": params}
    )
    assert answer.status == 202, (answer.status, answer.body)
    return answer.json()


class TestLabelsOnS3:
    def test_a_batch_lands_in_the_bucket_and_is_served_with_etag_and_ranges(
        self, stack, app_ctx, s3
    ):
        # Given a label batch for ten lots, rendered by a real worker
        job = labels(stack, list(range(1, 11)))
        row = stack.wait_status(job["id"], "done")
        key = row.artifact.path

        # Then its file is in the bucket under its content address, and nowhere on local disk
        stored = in_bucket(s3, key)
        assert hashlib.sha256(stored).hexdigest() == row.artifact.sha256
        assert key == artifacts.content_path(row.artifact.sha256, ".pdf")
        assert stack.artifact_files() == set() and stack.temp_files() == []

        # And the real web server streams it with the headers of a local file
        path = f"/api/v1/jobs/{job['id']}/file"
        whole = stack.api("GET", path)
        assert whole.status == 200 and whole.body == stored and page_count(stored) == 10
        etag = f'"{row.artifact.sha256}"'
        assert whole.header("ETag") == etag and whole.header("Accept-Ranges") == "bytes"
        assert whole.header("Last-Modified") and whole.header("Content-Type") == "application/pdf"
        assert whole.header("Content-Disposition").startswith(
            f'attachment; filename="{row.file_name}"'
        )
        part = stack.api("GET", path, headers={"Range": "bytes=100-1123"})
        assert part.status == 206 and part.body == stored[100:1124]
        assert part.header("Content-Range") == f"bytes 100-1123/{len(stored)}"
        same = stack.api("GET", path, headers={"Range": "bytes=0-9", "If-Range": etag})
        assert same.status == 206 and same.body == stored[:10]
        stale = stack.api("GET", path, headers={"Range": "bytes=0-9", "If-Range": '"0123"'})
        assert stale.status == 200 and stale.body == stored
        cached = stack.api("GET", path, headers={"If-None-Match": etag})
        assert cached.status == 304 and cached.body == b""

    def test_a_split_batch_is_merged_from_parts_in_the_bucket_and_the_parts_removed(
        self, stack, app_ctx, s3
    ):
        # Given every lot (250 labels): three chunks, possibly rendered by two processes
        job = labels(stack)
        row = stack.wait_status(job["id"], "done", timeout=120)
        assert row.chunks_total == 3

        # Then the merged file has every label, and no part is left in the bucket
        merged = in_bucket(s3, row.artifact.path)
        assert page_count(merged) == 250
        assert s3.keys(BUCKET, f"{PREFIX}/chunks/") == set()
        assert stack.temp_files() == []
        answer = stack.api("GET", f"/api/v1/jobs/{job['id']}/file")
        assert answer.status == 200 and answer.body == merged


class TestLabOnS3:
    def test_a_finalised_report_is_in_the_bucket_and_mailed_with_it_attached(
        self, stack, app_ctx, s3
    ):
        # Given a protocol with a draft report (its reception label is queued at seeding)
        with stack.context():
            seed_lab(1)
        report_id = db.session.scalar(sa.select(sa.func.max(Report.id)))

        # When the report is finalised through the API
        answer = stack.api(
            "POST",
            "/api/v1/jobs",
            json_body={"kind": "report_final", "params": {"report_id": report_id}},
        )
        assert answer.status == 202, answer.body
        row = stack.wait_status(answer.json()["id"], "done")

        # Then the PDF is in the bucket, the report FINAL with its sha256
        pdf = in_bucket(s3, row.artifact.path)
        db.session.commit()
        report = db.session.get(Report, report_id)
        assert report.status == "final" and report.pdf_sha256 == hashlib.sha256(pdf).hexdigest()
        assert stack.api("GET", f"/api/v1/jobs/{row.id}/file").body == pdf

        # And the mail (an .eml file: no SMTP_URL) carries the PDF read from the bucket
        def sent() -> OutboxItem | None:
            db.session.commit()
            item = db.session.scalars(
                sa.select(OutboxItem).where(OutboxItem.key == f"report:{report_id}:v1")
            ).first()
            return item if item is not None and item.status == "done" else None

        wait_for(sent, 60, message="the report's mail")
        emls = sorted((stack.data / "outbox").glob(f"report-{report_id}-v1@*.eml"))
        assert len(emls) == 1
        message = email.message_from_bytes(emls[0].read_bytes())
        attached = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
        assert len(attached) == 1 and attached[0].get_payload(decode=True) == pdf

        # And the protocol's reception label is a stored object the record keeps (pinned)
        protocol_id = report.protocol_id
        answer = stack.api(
            "POST",
            "/api/v1/jobs",
            json_body={"kind": "reception_label", "params": {"protocol_id": protocol_id}},
        )
        assert answer.status in (200, 202), answer.body
        label = stack.wait_status(answer.json()["id"], "done")
        assert label.artifact.pinned
        assert in_bucket(s3, label.artifact.path).startswith(b"%PDF-")
        served = stack.api("GET", f"/api/v1/jobs/{label.id}/file")
        assert served.status == 200 and served.body == in_bucket(s3, label.artifact.path)


class TestRetentionAndUsage:
    def test_usage_counts_the_bucket_and_retention_deletes_old_objects(self, stack, app_ctx, s3):
        # Given a finished batch of its own (lots 20–22)
        job = labels(stack, [20, 21, 22])
        row = stack.wait_status(job["id"], "done")
        key, size = row.artifact.path, row.artifact.size

        # Then the store's usage is what the bucket holds, listed page by page
        listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        assert not listed["IsTruncated"]
        usage = artifacts.store().usage()
        assert usage.objects == listed["KeyCount"] > 0
        assert usage.bytes == sum(item["Size"] for item in listed["Contents"])

        # When its file is past retention (and no other row names the same object)
        db.session.execute(
            sa.update(Artifact)
            .where(Artifact.id == row.artifact_id)
            .values(expires_at=utcnow() - timedelta(days=1))
        )
        db.session.commit()
        result = reaper.expire()

        # Then the object is gone from the bucket, the job expired, the download 410
        assert result["files"] >= 1 and result["jobs"] >= 1
        assert f"{PREFIX}/{key}" not in s3.keys(BUCKET, f"{PREFIX}/")
        assert stack.job(job["id"]).status == "expired"
        gone = stack.api("GET", f"/api/v1/jobs/{job['id']}/file")
        assert gone.status == 410 and gone.json()["error"]["code"] == "expired"
        after = artifacts.store().usage()
        assert after.objects == usage.objects - 1 and after.bytes == usage.bytes - size
        assert not Path(stack.data / "artifacts" / key).exists()

    def test_a_job_record_never_names_a_missing_object(self, stack, app_ctx, s3):
        db.session.commit()
        paths = set(db.session.scalars(sa.select(Artifact.path)))
        keys = {k.removeprefix(f"{PREFIX}/") for k in s3.keys(BUCKET, f"{PREFIX}/")}
        assert paths and paths <= keys
        done = db.session.scalar(sa.select(sa.func.count(Job.id)).where(Job.status == "done"))
        assert done and done >= 1
