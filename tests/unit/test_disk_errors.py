"""A disk that cannot take a file (full, over quota, failing) fails the job at once and clearly,
in the worker's own process; no C library may abort that process; leftovers go at once;
progress never passes its total; /healthz and /admin tell a low disk (DESIGN §7, issue 9).

Small real file systems are tmpfs mounts (root is needed: the tests fail, never skip, without).
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.conftest import add_user
from webapp import ROOT, jobs, monitor
from webapp.db import write_txn
from webapp.documents import Part
from webapp.errors import PermanentError
from webapp.extensions import db
from webapp.jobs import artifacts, batches, runner, transitions
from webapp.jobs.lease import claim
from webapp.messages import Msg
from webapp.models import Job
from webapp.storage import StorageError

KIND = "potting_lot_labels"


@contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` KiB mounted at `path` (made if missing), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a small tmpfs: run them as root (as CI does)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def run_python(*code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` (pieces run one after the other) in a fresh interpreter: a C library's abort must
    not take the test with it."""
    return subprocess.run(
        [sys.executable, "-c", "\n".join(textwrap.dedent(piece) for piece in code)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


PARTS = """
    from pathlib import Path
    from fpdf import FPDF
    parts = []
    for k in range(2):  # ~300 KB each: more than the 200 KB disk
        pdf = FPDF()
        pdf.set_font("helvetica", size=12)
        for i in range(800):
            pdf.add_page()
            pdf.cell(text=f"part {k} page {i} " + "x" * 80)
        path = Path(f"part{k}.pdf")
        pdf.output(str(path))
        parts.append(path)
"""


class TestNoAbort:
    """qpdf throws through its deterministic-ID writer where nothing catches: std::terminate."""

    def test_qpdf_itself_aborts_the_process_on_this_full_disk(self, tmp_path):
        # The trap this module guards against, reproduced: pikepdf's own save onto a full disk
        with tmpfs(tmp_path / "disk", 200) as disk:
            done = run_python(
                PARTS,
                f"""
                import pikepdf
                with pikepdf.open(parts[0]) as pdf:
                    pdf.save({str(disk / "out.pdf")!r}, deterministic_id=True)
                """,
                cwd=tmp_path,
            )
        assert done.returncode == -6, (done.returncode, done.stderr[-2000:])  # SIGABRT
        assert "QPDFSystemError" in done.stderr

    def test_merge_pdfs_on_a_full_disk_raises_oserror_and_the_process_lives(self, tmp_path):
        with tmpfs(tmp_path / "disk", 200) as disk:
            done = run_python(
                PARTS,
                f"""
                from webapp.pdf.merge import merge_pdfs
                try:
                    merge_pdfs(parts, Path({str(disk / "out.pdf")!r}))
                except OSError as exc:
                    print("errno", exc.errno)
                print("alive")
                """,
                cwd=tmp_path,
            )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["errno", str(errno.ENOSPC), "alive"]

    def test_a_label_chunk_written_to_a_full_disk_raises_oserror_and_the_process_lives(
        self, tmp_path
    ):
        with tmpfs(tmp_path / "disk", 64) as disk:
            done = run_python(
                f"""
                from datetime import date, datetime
                from pathlib import Path
                from types import SimpleNamespace
                from webapp.nursery.labels import label_for
                from webapp.pdf.labels import LabelWriter
                from webapp.pdf.layout import PRESETS
                layout = next(iter(PRESETS.values()))
                writer = LabelWriter(layout, created=datetime(2026, 12, 1))
                for i in range(600):
                    lot = SimpleNamespace(
                        lot_number=f"L{{i:06d}}", plant_name=f"Rosa 'Nº {{i}}' " + "x" * 30,
                        pot_size="P9", quantity=i, potting_date=date(2026, 11, 23),
                        location="Kas 3", customer="Tuincentrum Ñandú")
                    writer.add(i, label_for(lot))
                try:
                    writer.output(Path({str(disk / "chunk.pdf")!r}))
                except OSError as exc:
                    print("errno", exc.errno)
                print("alive")
                """,
                cwd=tmp_path,
            )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["errno", str(errno.ENOSPC), "alive"]


@pytest.fixture
def small_disk(make_app, tmp_path):
    """An app whose artifact directory is a 256 KiB tmpfs."""
    artifacts_dir = tmp_path / "data" / "artifacts"
    with tmpfs(artifacts_dir, 256):
        app = make_app(ARTIFACT_DIR=str(artifacts_dir))
        with app.app_context():
            add_user()
            from webapp.nursery.demo import seed_lots

            seed_lots(20)
            yield app
            db.session.remove()


def staff_user():
    from webapp.models import User

    return db.session.scalars(sa.select(User).where(User.email == "staff@example.com")).one()


def claimed(lot_ids=(1, 2, 3)):
    job, _ = jobs.submit(staff_user(), KIND, {"lot_ids": list(lot_ids)})
    lease = claim(job.id)
    assert lease is not None
    return job.id, lease


def row(job_id: str) -> Job:
    db.session.commit()
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def fill(path: Path) -> None:
    """Write zeros to `path` until its disk is full."""
    with path.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


class TestPermanentDiskErrors:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            (errno.ENOSPC, "disk_full_free"),
            (errno.EDQUOT, "disk_quota"),
            (errno.EIO, "disk_io_error"),
        ],
    )
    def test_a_disk_error_fails_the_job_at_once_with_its_message(self, small_disk, code, expected):
        job_id, lease = claimed()

        def work(lease):
            lease.temp_path().write_bytes(b"half a file")
            raise OSError(code, os.strerror(code))

        runner.guarded(lease, work)
        job = row(job_id)
        assert (job.status, job.attempts, job.error_code) == ("failed", 1, expected)
        assert "attempts" not in (job.error_params or {})  # not "gave up after N attempts"
        assert list((artifacts.root() / "tmp").iterdir()) == []  # its temp file is gone
        text = Msg(job.error_code, job.error_params).english()
        assert "disk" in text and "." in text
        if code == errno.ENOSPC:
            assert text.startswith("The disk is full: ") and " MB free" in text

    def test_a_real_full_disk_fails_the_render_with_free_and_needed(self, small_disk):
        job_id, lease = claimed()
        filler = artifacts.root() / "filler"

        def work(lease):
            fill(filler)
            runner.require_space(40_000_000)

        try:
            runner.guarded(lease, work)
        finally:
            filler.unlink()
        job = row(job_id)
        assert (job.status, job.error_code) == ("failed", "disk_full_sized"), job.error
        assert job.error_params["needed"] == 40.0 and job.error_params["free"] < 0.1
        text = Msg(job.error_code, job.error_params).english()
        assert re.fullmatch(
            r"The disk is full: 0(\.\d)? MB free, about 40 MB needed\. "
            r"Free space or ask an administrator\.",
            text,
        ), text

    def test_an_object_store_failure_and_an_unwritable_folder_are_still_retried(self, small_disk):
        for error in (StorageError(errno.EIO, "object storage: 503"), OSError(errno.ENOTDIR, "x")):
            job_id, lease = claimed(lot_ids=(len(str(error)) % 20 + 1,))
            runner.guarded(lease, lambda lease, error=error: (_ for _ in ()).throw(error))
            assert row(job_id).status == "queued", error

    def test_the_message_is_translated(self, small_disk):
        from flask_babel import force_locale

        msg = Msg("disk_full_sized", {"free": 3.0, "needed": 40.0})
        with force_locale("en"):
            assert msg.text() == (
                "The disk is full: 3 MB free, about 40 MB needed. Free space or ask an administrator."
            )

    def test_megabytes_for_messages(self):
        assert runner.megabytes(3_240_000) == 3.2
        assert runner.megabytes(40_400_000) == 40.0
        assert runner.megabytes(0) == 0.0


def split_job(total_lots: int = 10) -> tuple[str, list[str], object]:
    """A potting-lot job split into two chunks of 5 labels each (queued)."""
    job_id, lease = claimed(lot_ids=range(1, total_lots + 1))
    job = row(job_id)
    batches.split(lease, job, [Part(0, 0, 5), Part(1, 5, 10)])
    chunks = sorted(
        db.session.scalars(sa.select(Job).where(Job.parent_id == job_id)),
        key=lambda c: c.chunk_index,
    )
    db.session.commit()
    return job_id, [c.id for c in chunks], lease


class TestProgress:
    def test_a_reaped_chunk_takes_back_what_it_added_by_then_not_what_the_snapshot_saw(
        self, small_disk
    ):
        parent_id, (first, _second), _ = split_job()
        chunk = claim(first)
        chunk.progress(3, force=True)
        seen = SimpleNamespace(
            **{k: getattr(row(first), k) for k in ("id", "claims", "parent_id", "progress_done")}
        )
        chunk.progress(5, force=True)  # the worker went on after the reaper's snapshot
        assert row(parent_id).progress_done == 5
        with write_txn() as session:
            assert transitions.reap(session, seen, Msg("worker_silent"))
        assert row(parent_id).progress_done == 0  # not 5 - 3 = 2, which a re-run then adds to
        again = claim(first)
        again.progress(5, force=True)
        assert row(parent_id).progress_done == 5

    def test_progress_is_kept_within_its_total_in_sql(self, small_disk):
        parent_id, (first, second), _ = split_job()
        a, b = claim(first), claim(second)
        a.progress(5, force=True)
        b.progress(5, force=True)
        assert row(parent_id).progress_done == 10
        b.reported = 0  # as if a re-run chunk counted its labels again
        b.progress(5, force=True)
        parent = row(parent_id)
        assert parent.progress_done == parent.progress_total == 10
        a.progress(99, force=True)  # a chunk's own count too
        assert row(first).progress_done == row(first).progress_total == 5

    def test_a_retried_chunk_takes_back_its_count(self, small_disk):
        parent_id, (first, _second), _ = split_job()
        chunk = claim(first)
        chunk.progress(4, force=True)
        runner.guarded(chunk, lambda lease: (_ for _ in ()).throw(OSError(errno.ECONNRESET, "x")))
        assert row(first).status == "queued" and row(parent_id).progress_done == 0


class TestLeftovers:
    def test_a_chunk_failing_on_a_full_disk_removes_its_batchs_parts_at_once(self, small_disk):
        parent_id, (first, second), _ = split_job()
        done = claim(first)
        out = done.temp_path()
        out.write_bytes(b"%PDF-1.4 part 0")
        assert batches.finish_chunk(done, out, 0) is None
        parts = artifacts.root() / "chunks" / parent_id
        assert [p.name for p in parts.iterdir()] == ["00000.pdf"]

        failing = claim(second)

        def work(lease):
            lease.temp_path().write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

        runner.guarded(failing, work)
        assert row(parent_id).status == "failed" and row(parent_id).error_code == "disk_full_free"
        assert not parts.exists()
        assert list((artifacts.root() / "tmp").iterdir()) == []

    def test_a_cancelled_batchs_parts_go_when_its_chunk_stops_or_its_message_is_dropped(
        self, small_disk
    ):
        parent_id, (first, second), _ = split_job()
        done = claim(first)
        out = done.temp_path()
        out.write_bytes(b"%PDF-1.4 part 0")
        batches.finish_chunk(done, out, 0)
        parts = artifacts.root() / "chunks" / parent_id
        assert parts.is_dir()
        jobs.cancel(row(parent_id))
        # The queued chunk's message arrives: not claimable, dropped, and the parts go with it
        runner.run(second)
        assert row(second).status == "cancelled" and not parts.exists()

    def test_a_cancelled_batchs_parts_go_when_its_running_chunk_notices(self, small_disk):
        parent_id, (first, second), _ = split_job()
        done = claim(first)
        out = done.temp_path()
        out.write_bytes(b"%PDF-1.4 part 0")
        batches.finish_chunk(done, out, 0)
        running = claim(second)
        jobs.cancel(row(parent_id))

        def work(lease):
            lease.temp_path().write_bytes(b"half")
            lease.progress(1, force=True)  # the cancel check: the lease is lost

        runner.guarded(running, work)
        assert row(second).status == "cancelled"
        assert not (artifacts.root() / "chunks" / parent_id).exists()
        assert list((artifacts.root() / "tmp").iterdir()) == []

    def test_the_reaper_removes_a_dead_workers_temp_files_at_once(self, small_disk):
        tmp = artifacts.root() / "tmp"
        tmp.mkdir(exist_ok=True)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        import socket

        host = socket.gethostname()
        mine = tmp / f"{artifacts.temp_owner(os.getpid(), host)}abc.pdf.part"
        theirs = tmp / f"{artifacts.temp_owner(dead.pid, host)}abc.pdf.part"
        folder = tmp / f"{artifacts.temp_owner(dead.pid, host)}xlsx-1"
        for path in (mine, theirs):
            path.write_bytes(b"x")
        folder.mkdir()
        (folder / "sheet.xml").write_bytes(b"x")

        job_id, lease = claimed()
        with write_txn() as session:  # its worker is that dead process
            transitions.progress(session, job_id, lease.claims, 1, None)
            session.execute(
                sa.text("UPDATE jobs SET worker = :w WHERE id = :id"),
                {"w": f"{host}:{dead.pid}", "id": job_id},
            )
        from webapp.jobs.reaper import reap

        reap()
        assert row(job_id).status == "queued"
        assert sorted(p.name for p in tmp.iterdir()) == [mine.name]

    def test_temp_files_are_named_after_their_process(self, small_disk):
        import socket

        path = artifacts.temp_path(".pdf")
        assert path.name.startswith(f"{os.getpid()}@{socket.gethostname()}.")


class TestExports:
    def test_an_xlsx_written_to_a_full_disk_raises_oserror_and_leaves_no_spool(self, tmp_path):
        from webapp.exports import Column, XlsxRows

        with tmpfs(tmp_path / "disk", 64) as disk:
            writer = XlsxRows(disk / "out.xlsx", [Column("a"), Column("b")])
            assert [p.parent for p in disk.iterdir()] == [disk]  # its spool is beside the file
            with pytest.raises(OSError) as raised:  # the spool or the workbook: not wrapped
                writer.write([[f"row {i} " + "y" * 200, str(i)] for i in range(5000)])
                writer.close()
            assert raised.value.errno == errno.ENOSPC
            writer.abort()  # as the export kinds do on any error
            assert [p.name for p in disk.iterdir() if p.is_dir()] == []


class TestMergePrecheck:
    def test_the_merge_fails_before_writing_when_the_parts_would_not_fit(self, small_disk):
        parent_id, _chunks, _ = split_job()
        parts = artifacts.root() / "chunks" / parent_id
        parts.mkdir(parents=True)
        for i in range(2):
            (parts / f"{i:05d}.pdf").write_bytes(b"\1" * 100_000)  # 200 KB of parts, 256 disk
        parent = row(parent_id)
        with pytest.raises(PermanentError) as raised:
            runner.check_space_for_merge(parent)
        assert raised.value.msg.code == "disk_full_sized"
        assert raised.value.msg.params["needed"] == 0.2


class TestHealthAndMonitor:
    def test_healthz_says_low_with_the_free_bytes_and_stays_200(self, make_app):
        app = make_app(DISK_LOW_MB=10**9)  # a petabyte: every disk is low
        response = app.test_client().get("/healthz")
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "low" and body["disk"]["low"] is True
        assert (
            body["disk"]["free_bytes"] > 0
            and body["disk"]["total_bytes"] >= body["disk"]["free_bytes"]
        )

    def test_healthz_is_ok_with_room(self, make_app):
        body = make_app(DISK_LOW_MB=0).test_client().get("/healthz").get_json()
        assert body["status"] == "ok" and body["disk"]["low"] is False

    def test_the_monitoring_panel_warns_of_a_low_disk(self, make_app):
        app = make_app(DISK_LOW_MB=10**9)
        with app.app_context():
            add_user("admin@example.com", "pw-admin", role="admin")
            assert monitor.disk_space().low
        client = app.test_client()
        client.post("/login", data={"email": "admin@example.com", "password": "pw-admin"})
        html = client.get("/admin/panel").get_data(as_text=True)
        assert "data-disk-low" in html and "Disk space is low" in html
        app.config["DISK_LOW_MB"] = 0
        assert "data-disk-low" not in client.get("/admin/panel").get_data(as_text=True)


def test_tmpfs_is_unmounted_afterwards(tmp_path):
    target = tmp_path / "m"
    with tmpfs(target, 64):
        assert os.path.ismount(target)
    assert not os.path.ismount(target)


class TestAFailureOnAFullDatabase:
    """The failure itself meets the full disk (the database shares it): room is made, then it
    is written; when it never can be, the job is left to the reaper, the message not crashed."""

    @pytest.fixture
    def app_with_lots(self, app):
        with app.app_context():
            add_user()
            from webapp.nursery.demo import seed_lots

            seed_lots(10)
            yield app
            db.session.remove()

    def test_the_batchs_parts_make_room_and_the_failure_is_written(
        self, app_with_lots, monkeypatch
    ):
        from webapp.errors import DatabaseBusy
        from webapp.jobs.lease import Lease

        job_id, lease = claimed()
        part = artifacts.root() / batches.part_key(job_id, 1, ".pdf")
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"%PDF a part nothing will merge")
        real_fail, refusals = Lease.fail, []

        def full_once(self, msg):
            if not refusals:
                refusals.append(msg)
                raise DatabaseBusy(reason="io")
            return real_fail(self, msg)

        monkeypatch.setattr(Lease, "fail", full_once)
        monkeypatch.setattr(runner.time, "sleep", lambda _s: None)
        runner._fail(lease, job_id, Msg("disk_full_free", {"free": "0.1 MB"}))
        assert refusals and not part.exists()  # room made before the second try
        failed = row(job_id)
        assert failed.status == "failed" and failed.error_code == "disk_full_free"

    def test_a_failure_that_can_never_be_written_is_left_to_the_reaper(
        self, app_with_lots, monkeypatch
    ):
        from webapp.errors import DatabaseBusy
        from webapp.jobs.lease import Lease

        job_id, lease = claimed()
        tries = []

        def always_full(self, msg):
            tries.append(msg)
            raise DatabaseBusy(reason="io")

        monkeypatch.setattr(Lease, "fail", always_full)
        monkeypatch.setattr(runner.time, "sleep", lambda _s: None)
        runner._fail(lease, job_id, Msg("disk_io_error"))  # returns: no exception escapes
        assert len(tries) == runner.FAIL_WRITE_TRIES
        assert row(job_id).status == "running"  # the reaper re-queues it once stale
