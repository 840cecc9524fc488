"""Shared fixtures: a fresh app and database file per test; helpers to log in and wait."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.postgres import Cluster, binaries
from webapp import create_app
from webapp.cli import init_db
from webapp.extensions import db
from webapp.models import Role, User
from workers.waiting import wait_for  # noqa: F401  (tests import it from here)

IN_CI = os.environ.get("CI") == "true"
logging.getLogger("alembic").setLevel(logging.WARNING)


def require(condition: bool, reason: str) -> None:
    """Skip locally when a dependency is missing; under CI=true a missing dependency fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def app_config(data: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "PRESSROOM_DATA": str(data),
        "SECRET_KEY": "test-secret",
        "BROKER": "stub",
        "WTF_CSRF_ENABLED": False,
        "RETRY_BACKOFF_S": 0.05,
        "METRICS_DIR": None,  # one process: its own registry, no files
        **overrides,
    }


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One throw-away PostgreSQL server for the session, started when a test first asks."""
    bin_dir = binaries()
    require(bin_dir is not None, "PostgreSQL server binaries (Debian's postgresql package)")
    assert bin_dir is not None
    cluster = Cluster(bin_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """Config overrides for a fresh database of each kind: {} (SQLite in the data folder) or
    a new PostgreSQL database's DATABASE_URL."""
    if request.param == "sqlite":
        return {}
    cluster: Cluster = request.getfixturevalue("postgres")
    return {"DATABASE_URL": cluster.database()}


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database file migrated by `init-db` for the whole session; each test gets a copy
    (the migrations themselves are tested in tests/unit/test_migrations.py)."""
    data = tmp_path_factory.mktemp("migrated")
    app = create_app(app_config(data))
    with app.app_context():
        init_db()
        db.engine.dispose()
    return data / "pressroom.db"


@pytest.fixture
def make_app(tmp_path: Path, migrated_db: Path) -> Iterator[Callable[..., Flask]]:
    """Build an app on a fresh database file under tmp_path (a copy of one migrated by
    `init-db`, never create_all); `init_db` then finds it up to date."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        data = tmp_path / "data"
        data.mkdir(parents=True, exist_ok=True)
        if not (data / "pressroom.db").exists():
            shutil.copyfile(migrated_db, data / "pressroom.db")
        app = create_app(app_config(data, **overrides))
        with app.app_context():
            init_db()
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


def add_user(
    email: str = "staff@example.com", password: str = "pw-staff", role: Role = Role.STAFF
) -> User:
    db.session.commit()  # end any read transaction: SQLite refuses a stale one a write
    user = User(email=email, role=role, name=email.split("@")[0].title())
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def staff(ctx: Flask) -> User:
    return add_user()


@pytest.fixture
def admin(ctx: Flask) -> User:
    return add_user("admin@example.com", "pw-admin", Role.ADMIN)


@pytest.fixture
def token(app: Flask) -> str:
    """A staff user with 40 potting lots (ids 1..40) and an API token."""
    from webapp.auth import create_token
    from webapp.nursery.demo import seed_lots

    with app.app_context():
        user = add_user()
        seed_lots(40)
        return create_token(user)


@pytest.fixture
def lots(ctx: Flask) -> int:
    from webapp.nursery.demo import seed_lots

    return seed_lots(40)


JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "expired")


def job_in(
    state: str,
    owner_email: str = "staff@example.com",
    lot_ids: list[int] | None = None,
    kind: str = "potting_lot_labels",
) -> str:
    """A job of `owner_email` brought to `state` through the engine's own transitions (inside an
    app context): running has done one label ("drawing_labels"), failed has the code
    `lot_deleted` for lot 2, done has a small published file, expired had one and lost it."""
    from datetime import timedelta

    import sqlalchemy as sa

    from webapp import jobs
    from webapp.jobs.lease import claim
    from webapp.jobs.reaper import expire
    from webapp.messages import Msg
    from webapp.models import Artifact, Job, utcnow

    owner = db.session.scalars(sa.select(User).where(User.email == owner_email)).one()
    job, _created = jobs.submit(owner, kind, {"lot_ids": lot_ids or [1, 2, 3]})
    job_id = job.id
    if state == "cancelled":
        jobs.cancel(job)
    elif state != "queued":
        lease = claim(job_id)
        assert lease is not None
        if state == "running":
            lease.progress(1, "drawing_labels", force=True)
        elif state == "failed":
            lease.fail(Msg("lot_deleted", {"id": 2}))
        elif state in ("done", "expired"):
            tmp = lease.temp_path()
            tmp.write_bytes(b"%PDF-1.4\n% three labels\n")
            lease.finish(tmp, "application/pdf")
            if state == "expired":
                artifact_id = db.session.scalar(sa.select(Job.artifact_id).where(Job.id == job_id))
                db.session.execute(
                    sa.update(Artifact)
                    .where(Artifact.id == artifact_id)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
                db.session.commit()
                expire()
        else:
            raise ValueError(f"no such state: {state}")
    db.session.expire_all()
    assert db.session.get(Job, job_id).status == state
    return job_id


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, email: str = "staff@example.com", password: str = "pw-staff") -> Any:
        return self.client.post("/login", data={"email": email, "password": password})

    def logout(self) -> Any:
        return self.client.post("/logout")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def stub_worker(app: Flask) -> Iterator[Callable[[], None]]:
    """A Dramatiq worker on the StubBroker with our middleware; call it to drain the queue."""
    import dramatiq

    import workers.actors  # noqa: F401  (setup() binds its actors to this test's broker)
    from workers.broker import setup

    broker = setup(app)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()

    def drain() -> None:
        join_all(broker, worker)

    yield drain
    worker.stop()
    broker.close()


def join_all(broker: Any, worker: Any) -> None:
    """Wait until both queues are empty (whole jobs send chunks to the bulk queue)."""
    from webapp.jobs.queues import QUEUES

    while True:
        for queue in QUEUES:
            broker.join(queue, fail_fast=True)
        worker.join()
        if all(broker.queues[q].empty() for q in QUEUES):
            return


def which(name: str) -> str | None:
    return shutil.which(name)
