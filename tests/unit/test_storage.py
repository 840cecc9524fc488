"""The artifact stores (webapp/storage.py): the local folder and S3, the latter against a real
S3-protocol server on localhost (moto's server mode, tests/support/s3server.py); and the app
on S3: downloads with the same headers as from disk, retention, mail attachments."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import add_user
from tests.support.s3server import CREDENTIALS, MotoServer, moto_server
from webapp import jobs, mail, storage
from webapp.auth import create_token
from webapp.extensions import db
from webapp.jobs import artifacts, reaper
from webapp.models import Artifact, Job, User, utcnow

BUCKET = "pressroom-unit"
KIND = "potting_lot_labels"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
            server.create_bucket(BUCKET)
            yield server


@pytest.fixture
def prefix() -> str:
    """A prefix of the bucket of its own for each test."""
    return f"t-{secrets.token_hex(6)}"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3, prefix) -> storage.Storage:
    if request.param == "local":
        return storage.LocalStorage(tmp_path / "artifacts")
    return storage.S3Storage(f"s3://{BUCKET}/{prefix}", endpoint_url=s3.endpoint)


def a_file(folder: Path, data: bytes, name: str = "x.part") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


DATA = bytes(range(256)) * 40  # 10,240 bytes


class TestBothStores:
    """One behaviour, whichever the store."""

    def test_a_published_file_reads_back_whole_and_the_temp_file_is_consumed(self, store, tmp_path):
        tmp = a_file(tmp_path / "tmp", DATA)
        store.stage(tmp, "ab/abc.pdf")
        store.put(tmp, "ab/abc.pdf")
        assert not tmp.exists()
        assert store.exists("ab/abc.pdf") and store.size("ab/abc.pdf") == len(DATA)
        assert store.read_bytes("ab/abc.pdf") == DATA
        store.fetch("ab/abc.pdf", tmp_path / "copy")
        assert (tmp_path / "copy").read_bytes() == DATA

    def test_an_existing_key_is_kept_as_is(self, store, tmp_path):
        store.put(a_file(tmp_path / "tmp", b"first"), "k/one.pdf")
        second = a_file(tmp_path / "tmp", b"second")
        store.put(second, "k/one.pdf")
        assert store.read_bytes("k/one.pdf") == b"first" and not second.exists()

    def test_a_part_replaces_what_a_stale_attempt_left_at_its_index(self, store, tmp_path):
        # A split job's part is keyed by its index: the attempt whose lease holds wins.
        store.stage(a_file(tmp_path / "stale", b"stale attempt"), "chunks/j/00003.pdf")
        fresh = a_file(tmp_path / "fresh", b"this attempt")
        store.replace(fresh, "chunks/j/00003.pdf")
        assert store.read_bytes("chunks/j/00003.pdf") == b"this attempt" and not fresh.exists()

    def test_a_reader_seeks_and_reads_only_from_there(self, store, tmp_path):
        store.put(a_file(tmp_path / "tmp", DATA), "r/data.bin")
        with store.open("r/data.bin") as reader:
            assert reader.seek(0, 2) == len(DATA)
            reader.seek(1000)
            assert reader.read(24) == DATA[1000:1024]
            assert reader.read(8) == DATA[1024:1032]
            reader.seek(10_000)
            assert reader.read() == DATA[10_000:]
            assert reader.read(5) == b""

    def test_a_missing_key_is_file_not_found(self, store):
        assert not store.exists("no/such.pdf") and store.size("no/such.pdf") is None
        with pytest.raises(FileNotFoundError):
            store.read_bytes("no/such.pdf")
        with pytest.raises(FileNotFoundError):
            store.open("no/such.pdf")
        store.delete("no/such.pdf")  # absent is fine

    def test_listing_folders_deleting_and_usage(self, store, tmp_path):
        for key, data in (
            ("aa/1.pdf", b"1" * 10),
            ("bb/2.pdf", b"2" * 20),
            ("chunks/job-a/00000.pdf", b"a" * 5),
            ("chunks/job-a/00001.pdf", b"b" * 5),
            ("chunks/job-b/00000.pdf", b"c" * 7),
        ):
            store.put(a_file(tmp_path / "tmp", data), key)
        listed = {item.key: item.size for item in store.iter()}
        assert listed == {
            "aa/1.pdf": 10,
            "bb/2.pdf": 20,
            "chunks/job-a/00000.pdf": 5,
            "chunks/job-a/00001.pdf": 5,
            "chunks/job-b/00000.pdf": 7,
        }
        assert all(item.modified > time.time() - 3600 for item in store.iter())
        assert store.folders("chunks/") == ["job-a", "job-b"]
        assert store.usage().bytes == 47 and store.usage().objects == 5

        assert store.delete_prefix("chunks/job-a/") == 2
        store.delete("aa/1.pdf")
        assert {item.key for item in store.iter()} == {"bb/2.pdf", "chunks/job-b/00000.pdf"}
        assert store.folders("chunks/") == ["job-b"]
        assert store.usage().bytes == 27 and store.usage().objects == 2


class TestLocalStorage:
    def test_the_paths_are_todays_paths(self, tmp_path):
        store = storage.LocalStorage(tmp_path)
        store.put(a_file(tmp_path / "tmp", b"x"), "ab/abc.pdf")
        assert store.local_path("ab/abc.pdf") == tmp_path / "ab" / "abc.pdf"
        assert (tmp_path / "ab" / "abc.pdf").read_bytes() == b"x"

    def test_usage_has_the_disks_free_and_total(self, tmp_path):
        usage = storage.LocalStorage(tmp_path).usage()
        assert usage.total and usage.free is not None and usage.free <= usage.total


class TestS3Storage:
    def test_keys_sit_under_the_prefix_and_are_listed_without_it(self, s3, tmp_path, prefix):
        store = storage.S3Storage(f"s3://{BUCKET}/{prefix}/", endpoint_url=s3.endpoint)
        store.put(a_file(tmp_path, b"x"), "ab/abc.pdf")
        assert s3.keys(BUCKET, prefix) == {f"{prefix}/ab/abc.pdf"}
        assert [item.key for item in store.iter()] == ["ab/abc.pdf"]
        assert store.local_path("ab/abc.pdf") is None

    def test_listing_pages_through_more_than_a_thousand_objects(self, s3, prefix):
        store = storage.S3Storage(f"s3://{BUCKET}/{prefix}", endpoint_url=s3.endpoint)
        client = s3.client()
        for i in range(1005):
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/k/{i:04d}", Body=b"xy")
        usage = store.usage()
        assert usage.objects == 1005 and usage.bytes == 2010 and usage.free is None
        assert store.delete_prefix("k/") == 1005 and store.usage().objects == 0

    def test_a_reader_asks_the_server_for_the_bytes_it_sends_only(self, s3, tmp_path, prefix):
        asked: list[tuple[int, int]] = []

        class Recording(storage.S3Storage):
            def get(self, key: str, start: int, stop: int):  # type: ignore[no-untyped-def]
                asked.append((start, stop))
                return super().get(key, start, stop)

        store = Recording(f"s3://{BUCKET}/{prefix}", endpoint_url=s3.endpoint)
        store.put(a_file(tmp_path, DATA), "r/data.bin")
        reader = store.open("r/data.bin")
        assert isinstance(reader, storage.S3Reader)
        reader.seek(1000)
        reader.stop = 1024  # what a 206 for bytes=1000-1023 sets
        assert reader.read(8192) == DATA[1000:1024] and reader.read(8192) == b""
        assert asked == [(1000, 1024)]

    def test_an_unreachable_server_is_an_os_error_the_job_retries(self, tmp_path):
        from workers.waiting import free_port

        store = storage.S3Storage(
            f"s3://{BUCKET}/x", endpoint_url=f"http://127.0.0.1:{free_port()}"
        )
        with pytest.raises(storage.StorageError) as caught:
            store.exists("a")
        assert isinstance(caught.value, OSError) and BUCKET in str(caught.value)

    def test_a_bad_url_is_refused(self):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            storage.S3Storage("s3:///nobucket")
        with pytest.raises(ValueError, match="unknown store"):
            storage.from_config({"ARTIFACTS_URL": "ftp://x", "ARTIFACT_DIR": "/tmp"})


# -- the app on S3 ------------------------------------------------------------------------------


@pytest.fixture
def app(make_app, s3, prefix):
    """This module's app (also the stub worker's) keeps its files in the bucket."""
    return make_app(ARTIFACTS_URL=f"s3://{BUCKET}/{prefix}", S3_ENDPOINT_URL=s3.endpoint)


@pytest.fixture
def s3_app(app):
    return app


@pytest.fixture
def done_on_s3(s3_app, stub_worker, s3, prefix) -> dict:
    """A finished label job of the staff user, published to the bucket."""
    from webapp.nursery.demo import seed_lots

    with s3_app.app_context():
        staff = add_user()
        seed_lots(10)
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2, 3]})
        job_id, token = job.id, create_token(staff)
    stub_worker()
    with s3_app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == "done", job.error
        data = s3.client().get_object(Bucket=BUCKET, Key=f"{prefix}/{job.artifact.path}")
        return {
            "id": job_id,
            "token": token,
            "sha256": job.artifact.sha256,
            "key": job.artifact.path,
            "name": job.file_name,
            "data": data["Body"].read(),
        }


class TestTheAppOnS3:
    def test_a_job_publishes_to_the_bucket_under_its_content_address(
        self, s3_app, done_on_s3, s3, prefix
    ):
        data = done_on_s3["data"]
        assert data.startswith(b"%PDF-")
        assert hashlib.sha256(data).hexdigest() == done_on_s3["sha256"]
        assert done_on_s3["key"] == artifacts.content_path(done_on_s3["sha256"], ".pdf")
        assert s3.keys(BUCKET, prefix) == {f"{prefix}/{done_on_s3['key']}"}
        tmp = Path(s3_app.config["ARTIFACT_DIR"]) / "tmp"
        assert not tmp.is_dir() or list(tmp.iterdir()) == []  # rendered locally, then removed

    def test_a_download_has_etag_ranges_if_range_304_and_disposition(self, s3_app, done_on_s3):
        client = s3_app.test_client()
        url = f"/api/v1/jobs/{done_on_s3['id']}/file"
        auth = {"Authorization": f"Bearer {done_on_s3['token']}"}
        data, etag = done_on_s3["data"], f'"{done_on_s3["sha256"]}"'

        whole = client.get(url, headers=auth)
        assert whole.status_code == 200 and whole.get_data() == data
        assert whole.headers["ETag"] == etag and whole.headers["Accept-Ranges"] == "bytes"
        assert whole.headers["Content-Length"] == str(len(data))
        assert whole.headers["Content-Type"] == "application/pdf"
        assert whole.headers["Last-Modified"]
        assert whole.headers["Cache-Control"] == "private, no-cache"
        assert whole.headers["Content-Disposition"].startswith(
            f'attachment; filename="{done_on_s3["name"]}"'
        )

        part = client.get(url, headers={**auth, "Range": "bytes=100-1123"})
        assert part.status_code == 206 and part.get_data() == data[100:1124]
        assert part.headers["Content-Range"] == f"bytes 100-1123/{len(data)}"
        tail = client.get(url, headers={**auth, "Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.get_data() == data[-10:]
        same = client.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": etag})
        assert same.status_code == 206 and same.get_data() == data[:10]
        stale = client.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": '"0123"'})
        assert stale.status_code == 200 and stale.get_data() == data
        cached = client.get(url, headers={**auth, "If-None-Match": etag})
        assert cached.status_code == 304 and cached.get_data() == b""
        beyond = client.get(url, headers={**auth, "Range": f"bytes={len(data) + 5}-"})
        assert beyond.status_code == 416

    def test_an_object_removed_from_the_bucket_is_410(self, s3_app, done_on_s3, s3, prefix):
        s3.client().delete_object(Bucket=BUCKET, Key=f"{prefix}/{done_on_s3['key']}")
        client = s3_app.test_client()
        answer = client.get(
            f"/api/v1/jobs/{done_on_s3['id']}/file",
            headers={"Authorization": f"Bearer {done_on_s3['token']}"},
        )
        assert answer.status_code == 410

    def test_retention_deletes_the_object_and_the_job_expires(self, s3_app, done_on_s3, s3, prefix):
        with s3_app.app_context():
            db.session.execute(sa.update(Artifact).values(expires_at=utcnow() - timedelta(days=1)))
            db.session.commit()
            result = reaper.expire()
            assert result["files"] == 1 and result["jobs"] == 1
            assert db.session.get(Job, done_on_s3["id"]).status == "expired"
        assert s3.keys(BUCKET, prefix) == set()

    def test_an_unrecorded_upload_is_removed_and_a_recorded_one_kept(
        self, s3_app, done_on_s3, s3, prefix
    ):
        s3.client().put_object(Bucket=BUCKET, Key=f"{prefix}/zz/orphan.pdf", Body=b"lost lease")
        with s3_app.app_context():
            store = artifacts.store()
            assert reaper._remove_orphans(store, time.time() + 60) == 1
        assert s3.keys(BUCKET, prefix) == {f"{prefix}/{done_on_s3['key']}"}

    def test_parts_of_batches_that_ended_are_removed(self, s3_app, done_on_s3, s3, prefix):
        client = s3.client()
        for job_id in ("gone-job", done_on_s3["id"]):  # no such job; a done (ended) one
            for index in range(2):
                key = f"{prefix}/chunks/{job_id}/{index:05d}.pdf"
                client.put_object(Bucket=BUCKET, Key=key, Body=b"part")
        with s3_app.app_context():
            assert reaper.expire()["chunk_folders"] == 2
        assert s3.keys(BUCKET, prefix) == {f"{prefix}/{done_on_s3['key']}"}

    def test_a_mail_attaches_the_file_from_the_bucket(self, s3_app, done_on_s3):
        with s3_app.app_context():
            message = mail.build(
                mail.payload(
                    to="vet@example.com",
                    subject="Informe",
                    body="Adjunto.",
                    key="report-1-v1",
                    attachments=[
                        {
                            "path": done_on_s3["key"],
                            "name": "informe.pdf",
                            "type": "application/pdf",
                        }
                    ],
                )
            )
        attached = next(message.iter_attachments())
        assert attached.get_filename() == "informe.pdf"
        assert attached.get_content() == done_on_s3["data"]

    def test_an_identical_submit_reuses_the_object_while_it_is_in_the_bucket(
        self, s3_app, done_on_s3, s3, prefix
    ):
        with s3_app.app_context():
            staff = db.session.scalars(sa.select(User)).one()
            again, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2, 3]})
            assert again.status == "done" and again.artifact.path == done_on_s3["key"]
            s3.client().delete_object(Bucket=BUCKET, Key=f"{prefix}/{done_on_s3['key']}")
            # gone from the bucket: rendered again, not handed out as missing
            third, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2, 3]})
            assert third.status == "queued"
