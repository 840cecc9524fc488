"""Admin pages and /metrics (DESIGN §4b): staff get 403; the figures match a known set of jobs;
batch actions on ticked or on all matching jobs, each written to the audit log; /metrics for an
admin's token or METRICS_TOKEN, parsed with prometheus-client's own parser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import add_user
from webapp.auth import create_token
from webapp.db import write_txn
from webapp.extensions import db
from webapp.models import AuditEntry, Job, User, utcnow


def add_jobs(app, rows):
    """Jobs with a known kind, status and duration (seconds), finished minutes ago."""
    with app.app_context(), write_txn() as session:
        owner = session.scalars(sa.select(User).filter_by(email="staff@example.com")).one()
        now = utcnow()
        for i, (kind, status, seconds, minutes_ago) in enumerate(rows):
            finished = now - timedelta(minutes=minutes_ago)
            session.add(
                Job(
                    id=f"job{i:04d}",
                    owner_id=owner.id,
                    kind=kind,
                    params={},
                    status=status,
                    input_hash=f"h{i}",
                    created_at=finished - timedelta(seconds=(seconds or 0) + 1),
                    started_at=finished - timedelta(seconds=seconds)
                    if seconds is not None
                    else None,
                    finished_at=finished if status in ("done", "failed") else None,
                )
            )


@pytest.fixture
def people(app):
    with app.app_context():
        staff = add_user("staff@example.com", "pw-staff")
        admin = add_user("admin@example.com", "pw-admin", role="admin")
        app.config["TOKENS"] = {"staff": create_token(staff), "admin": create_token(admin)}
    return app


def login(client, who="admin"):
    client.post("/login", data={"email": f"{who}@example.com", "password": f"pw-{who}"})


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)', html)
    assert found, name
    return found.group(1).strip()


class TestAccess:
    @pytest.mark.parametrize(
        "path", ["/admin", "/admin/panel", "/admin/audit", "/admin/stats", "/admin/mails"]
    )
    def test_staff_get_403_and_admins_the_page(self, people, client, path):
        login(client, "staff")
        assert client.get(path).status_code == 403
        client.post("/logout")
        login(client, "admin")
        assert client.get(path).status_code == 200


class TestFigures:
    def test_the_panel_counts_a_known_set_of_jobs(self, people, client):
        rows = [("potting_lot_labels", "done", s, 10) for s in (1, 2, 3, 4, 100)]
        rows += [("potting_lot_labels", "failed", 1, 10)]  # 1 of 6 in the last hour
        rows += [("work_order", "done", 1, 120), ("work_order", "failed", 1, 120)]  # 2 h ago
        rows += [("work_order", "done", 1, 60 * 30)]  # older than a day: not counted
        rows += [("work_order", "queued", None, 0), ("work_order", "running", 1, 0)]
        add_jobs(people, rows)
        login(client)
        html = client.get("/admin/panel").get_data(as_text=True)
        assert figure(html, "queued") == "1" and figure(html, "running") == "1"
        assert figure(html, "failure-hour") == "16.7 %"  # 1 failed of 6 ended in the hour
        assert figure(html, "failure-day") == "25.0 %"  # 2 failed of 8 in the day
        labels = re.search(r'data-kind="potting_lot_labels">(.*?)</tr>', html, re.S).group(1)
        cells = re.findall(r'class="num">([^<]*)<', labels)
        assert cells == ["5", "1", "3.00 s", "100.00 s"]  # done, failed, p50, p95
        assert html.count("<rect") == 48  # 24 hours × (done, failed)


class TestBatchActions:
    def test_ticked_and_all_matching_jobs_are_cancelled_and_audited(self, people, client):
        add_jobs(
            people,
            [("work_order", "queued", None, 0) for _ in range(4)] + [("work_order", "done", 1, 5)],
        )
        login(client)
        page = client.get("/admin?status=queued").get_data(as_text=True)
        assert page.count('name="job_id"') == 4
        answer = client.post(
            "/admin/jobs/batch",
            data={"action": "cancel", "scope": "selected", "job_id": ["job0000"]},
        )
        assert answer.status_code == 303
        answer = client.post(
            "/admin/jobs/batch", data={"action": "cancel", "scope": "matching", "status": "queued"}
        )
        with people.app_context():
            statuses = dict(db.session.execute(sa.select(Job.id, Job.status)).all())
            assert [statuses[f"job{i:04d}"] for i in range(5)] == ["cancelled"] * 4 + ["done"]
            entries = db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
            assert [(e.action, e.result) for e in entries] == [
                ("jobs.cancel", {"changed": 1, "skipped": 0}),
                ("jobs.cancel", {"changed": 3, "skipped": 0}),
            ]
            assert entries[1].scope == {"matching": {"status": "queued"}}
            assert entries[0].user.email == "admin@example.com"
        audit = client.get("/admin/audit").get_data(as_text=True)
        assert audit.count('data-action="jobs.cancel"') == 2

    def test_a_bad_action_changes_nothing(self, people, client):
        add_jobs(people, [("work_order", "queued", None, 0)])
        login(client)
        client.post("/admin/jobs/batch", data={"action": "drop", "scope": "matching"})
        with people.app_context():
            assert db.session.scalar(sa.select(Job.status)) == "queued"


class TestMetrics:
    def test_tokens_decide_and_the_text_parses(self, people, client, stub_worker):
        assert client.get("/metrics").status_code == 401
        staff = {"Authorization": f"Bearer {people.config['TOKENS']['staff']}"}
        assert client.get("/metrics", headers=staff).status_code == 403
        admin = {"Authorization": f"Bearer {people.config['TOKENS']['admin']}"}
        answer = client.post(
            "/api/v1/jobs",
            headers=admin,
            json={"kind": "work_order", "params": {"work_order_id": 1}},
        )
        assert answer.status_code == 422  # (no lab data here: an honest refusal, counted nowhere)
        text = client.get("/metrics", headers=admin).get_data(as_text=True)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in (
            "pressroom_jobs",
            "pressroom_job_duration_seconds",
            "pressroom_queue_length",
            "pressroom_outbox_pending",
            "pressroom_mails",
            "pressroom_workers_alive",
        ):
            assert name in families, name
        people.config["METRICS_TOKEN"] = "s3cret"
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
