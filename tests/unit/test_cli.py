"""The CLI of DESIGN §5, run as `flask --app webapp …` through Flask's CLI test runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import app_config
from webapp import create_app
from webapp.config import secret_key_file
from webapp.extensions import db
from webapp.models import ApiToken, PottingLot, User


def run(app, *args: str, input: str | None = None):  # noqa: A002  (click's own name)
    return app.test_cli_runner().invoke(args=list(args), input=input)


class TestInitDb:
    """`init-db` migrates a fresh database and creates the secret key once."""

    def test_init_db_creates_the_schema_and_the_secret_key_on_a_fresh_data_dir(self, tmp_path):
        config = app_config(tmp_path / "fresh")
        config.pop("SECRET_KEY")
        app = create_app(config)
        try:
            result = run(app, "init-db")
            assert result.exit_code == 0, result.output
            assert "Database ready" in result.output
            assert secret_key_file(tmp_path / "fresh").exists()
            with app.app_context():
                tables = set(sa.inspect(db.engine).get_table_names())
            assert {"users", "api_tokens", "potting_lots", "artifacts", "jobs"} <= tables
            again = run(app, "init-db")  # idempotent: migrations are already at head
            assert again.exit_code == 0, again.output
        finally:
            with app.app_context():
                db.engine.dispose()


class TestSeedDemo:
    """`seed-demo --lots N`: ids 1..N on a fresh database, names with diacritics, demo logins."""

    def test_seed_demo_gives_lots_with_ids_one_to_n(self, app):
        result = run(app, "seed-demo", "--lots", "60")
        assert result.exit_code == 0, result.output
        with app.app_context():
            ids = db.session.scalars(sa.select(PottingLot.id).order_by(PottingLot.id)).all()
            texts = db.session.execute(
                sa.select(PottingLot.plant_name, PottingLot.location, PottingLot.customer)
            ).all()
            emails = set(db.session.scalars(sa.select(User.email)))
        assert ids == list(range(1, 61))
        assert any(not (value or "").isascii() for row in texts for value in row)
        assert {"staff@example.com", "admin@example.com"} <= emails
        assert "staff@example.com / staff" in result.output

    def test_seeding_twice_adds_lots_but_not_the_demo_users_again(self, app):
        run(app, "seed-demo", "--lots", "3")
        result = run(app, "seed-demo", "--lots", "2")
        assert result.exit_code == 0, result.output
        assert "login:" not in result.output
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(PottingLot.id))) == 5
            assert db.session.scalar(sa.select(sa.func.count(User.id))) == 2

    def test_the_demo_logins_work(self, app):
        run(app, "seed-demo", "--lots", "1")
        client = app.test_client()
        response = client.post("/login", data={"email": "admin@example.com", "password": "admin"})
        assert response.status_code == 302 and "/login" not in response.headers["Location"]


class TestUsersCreate:
    """`users create EMAIL --role staff|admin [--password P]`."""

    def test_an_admin_is_created_with_the_given_password(self, app):
        result = run(
            app, "users", "create", "boss@example.com", "--role", "admin", "--password", "s3cret"
        )
        assert result.exit_code == 0, result.output
        with app.app_context():
            user = db.session.scalars(sa.select(User).where(User.email == "boss@example.com")).one()
            assert user.is_admin and user.check_password("s3cret")
        response = app.test_client().post(
            "/login", data={"email": "boss@example.com", "password": "s3cret"}
        )
        assert response.status_code == 302

    def test_the_role_defaults_to_staff_and_the_password_is_prompted(self, app):
        result = run(app, "users", "create", "ana@example.com", input="hunter22\nhunter22\n")
        assert result.exit_code == 0, result.output
        with app.app_context():
            user = db.session.scalars(sa.select(User).where(User.email == "ana@example.com")).one()
            assert not user.is_admin and user.role == "staff" and user.check_password("hunter22")

    def test_an_unknown_role_is_refused(self, app):
        result = run(
            app, "users", "create", "x@example.com", "--role", "owner", "--password", "pw-x1"
        )
        assert result.exit_code == 2 and "owner" in result.output

    def test_a_taken_email_is_refused_whatever_its_case(self, app):
        run(app, "users", "create", "ana@example.com", "--password", "pw-ana")
        result = run(app, "users", "create", "ANA@example.com", "--password", "pw-ana")
        assert result.exit_code == 1 and "already exists" in result.output
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(User.id))) == 1


class TestTokensCreate:
    """`tokens create EMAIL` prints the token alone on its last line, and it works on the API."""

    def test_the_last_line_is_the_token_and_it_works_on_the_api(self, app):
        run(app, "users", "create", "bot@example.com", "--password", "pw-bot")
        run(app, "seed-demo", "--lots", "2")
        result = run(app, "tokens", "create", "bot@example.com")
        assert result.exit_code == 0, result.output
        token = result.output.rstrip("\n").splitlines()[-1]
        assert token == token.strip() and " " not in token and len(token) >= 32
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/jobs", headers=headers).status_code == 200
        response = client.post(
            "/api/v1/jobs",
            headers=headers,
            json={"kind": "potting_lot_labels", "params": {"lot_ids": [1, 2]}},
        )
        assert response.status_code == 202

    def test_only_the_tokens_hash_is_stored(self, app):
        run(app, "users", "create", "bot@example.com", "--password", "pw-bot")
        token = run(app, "tokens", "create", "bot@example.com").output.splitlines()[-1]
        with app.app_context():
            stored = db.session.scalars(sa.select(ApiToken.token_sha256)).all()
        assert len(stored) == 1 and token not in stored[0]

    def test_two_tokens_are_different_and_both_work(self, app):
        run(app, "users", "create", "bot@example.com", "--password", "pw-bot")
        tokens = [
            run(app, "tokens", "create", "bot@example.com").output.splitlines()[-1]
            for _ in range(2)
        ]
        assert tokens[0] != tokens[1]
        client = app.test_client()
        for token in tokens:
            assert (
                client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            )

    def test_an_unknown_email_is_an_error(self, app):
        result = run(app, "tokens", "create", "nobody@example.com")
        assert result.exit_code == 1 and "No user" in result.output

    def test_creating_a_token_after_a_read_does_not_hit_a_locked_database(self, app):
        # Given a session that read the user (an open read transaction, as the CLI has) …
        from webapp.auth import create_token

        run(app, "users", "create", "bot@example.com", "--password", "pw-bot")
        with app.app_context():
            user = db.session.scalars(sa.select(User)).one()
            # … and another process (a worker) that wrote since that read began,
            with db.engine.connect() as other:
                other.execute(sa.update(User).values(name="Bot"))
                other.commit()
            # when the token is created, SQLite must not refuse the stale snapshot's write.
            token = create_token(user)
        assert token.startswith("prt_")


class TestRealCommandLine:
    """The documented commands as a shell runs them (one subprocess each, so kept few)."""

    def _run(self, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
        bin_dir = Path(sys.executable).parent
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")
        }
        env["PRESSROOM_DATA"] = str(tmp_path / "data")
        return subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def test_flask_app_webapp_init_db_users_and_tokens(self, tmp_path):
        assert self._run(tmp_path, "flask", "--app", "webapp", "init-db").returncode == 0
        created = self._run(
            tmp_path,
            "flask",
            "--app",
            "webapp",
            "users",
            "create",
            "ops@example.com",
            "--role",
            "admin",
            "--password",
            "pw-ops",
        )
        assert created.returncode == 0, created.stderr
        tokens = self._run(
            tmp_path, "flask", "--app", "webapp", "tokens", "create", "ops@example.com"
        )
        assert tokens.returncode == 0, tokens.stderr
        token = tokens.stdout.splitlines()[-1]
        assert token.startswith("prt_") and " " not in token

    def test_the_pressroom_script_has_the_same_commands_and_run(self, tmp_path):
        result = self._run(tmp_path, "pressroom", "--help")
        assert result.returncode == 0, result.stderr
        for command in ("init-db", "seed-demo", "users", "tokens", "potting-lots", "run"):
            assert command in result.stdout
