"""Configuration (DESIGN §5): defaults, then the environment, then a test mapping; the secret key
generated once by init-db; the embedded Redis socket path short enough for the kernel."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import app_config
from webapp import config as config_module
from webapp import create_app
from webapp.extensions import db

ENV_KEYS = (
    "PRESSROOM_DATA",
    *config_module._INT_KEYS,
    *config_module._FLOAT_KEYS,
    *config_module._STR_KEYS,
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    """No Pressroom variables in the environment; the working directory is a fresh folder."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TestDefaults:
    """With nothing set, everything lives under ./instance and Redis is the embedded one."""

    def test_the_defaults_make_the_embedded_setup(self, clean_env):
        config = config_module.load()
        data = clean_env / "instance"
        assert config["PRESSROOM_DATA"] == str(data)
        assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{data / 'pressroom.db'}"
        assert config["REDIS_URL"] == f"unix://{data / 'redis.sock'}" and config["REDIS_EMBEDDED"]
        assert config["PORT"] == 5000 and config["SITE_URL"] == "http://localhost:5000"
        assert config["SMTP_URL"] is None
        assert config["TZ"] == "Europe/Amsterdam"
        assert config["ARTIFACT_DIR"] == str(data / "artifacts")
        assert config["OUTBOX_DIR"] == str(data / "outbox")
        assert config["WORKER_PROCESSES"] == (os.cpu_count() or 1) and config["WORKER_THREADS"] >= 1

    def test_csrf_tokens_do_not_expire_by_default(self, clean_env):
        assert config_module.load()["WTF_CSRF_TIME_LIMIT"] is None

    def test_there_is_no_secret_key_before_init_db(self, clean_env):
        assert config_module.load()["SECRET_KEY"] is None


class TestLayering:
    """The environment overrides the defaults; the test mapping overrides both."""

    def test_the_environment_overrides_the_defaults(self, clean_env, monkeypatch):
        monkeypatch.setenv("PRESSROOM_DATA", str(clean_env / "data"))
        monkeypatch.setenv("PORT", "8080")
        monkeypatch.setenv("MAX_LABELS", "123")
        monkeypatch.setenv("HEARTBEAT_S", "2.5")
        monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/3")
        monkeypatch.setenv("DATABASE_URL", "sqlite:////srv/pressroom/db.sqlite")
        monkeypatch.setenv("SMTP_URL", "smtp://mail.internal:25")
        monkeypatch.setenv("SECRET_KEY", "from-the-env")
        monkeypatch.setenv("WORKER_PROCESSES", "7")
        config = config_module.load()
        assert config["PRESSROOM_DATA"] == str(clean_env / "data")
        assert config["PORT"] == 8080 and config["SITE_URL"] == "http://localhost:8080"
        assert config["MAX_LABELS"] == 123 and config["HEARTBEAT_S"] == 2.5
        assert config["REDIS_URL"] == "redis://cache.internal:6379/3"
        assert not config.get("REDIS_EMBEDDED")
        assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////srv/pressroom/db.sqlite"
        assert config["SMTP_URL"] == "smtp://mail.internal:25"
        assert config["SECRET_KEY"] == "from-the-env" and config["WORKER_PROCESSES"] == 7

    def test_site_url_from_the_environment_loses_its_trailing_slash(self, clean_env, monkeypatch):
        monkeypatch.setenv("SITE_URL", "https://press.example.org/")
        assert config_module.load()["SITE_URL"] == "https://press.example.org"

    def test_an_empty_variable_counts_as_unset(self, clean_env, monkeypatch):
        monkeypatch.setenv("REDIS_URL", "")
        monkeypatch.setenv("PORT", "")
        config = config_module.load()
        assert config["REDIS_EMBEDDED"] and config["PORT"] == 5000

    @pytest.mark.parametrize(
        "given",
        [
            "postgres://press:pw@db.internal/pressroom",  # Heroku-style
            "postgresql://press:pw@db.internal/pressroom",  # as most tools write it
            "postgresql+psycopg://press:pw@db.internal/pressroom",  # SQLAlchemy's own spelling
        ],
    )
    def test_a_postgres_url_goes_to_psycopg_3_however_it_is_written(
        self, clean_env, monkeypatch, given
    ):
        monkeypatch.setenv("DATABASE_URL", given)
        uri = config_module.load()["SQLALCHEMY_DATABASE_URI"]
        assert uri == "postgresql+psycopg://press:pw@db.internal/pressroom"
        # … and SQLAlchemy finds the driver that is installed (psycopg2 is not).
        assert sa.engine.make_url(uri).get_dialect().driver == "psycopg"

    def test_the_mapping_overrides_the_environment(self, clean_env, monkeypatch):
        monkeypatch.setenv("PORT", "8080")
        monkeypatch.setenv("TZ", "UTC")
        config = config_module.load({"PORT": 9000, "TZ": "Asia/Tokyo", "MAX_LABELS": 5})
        assert config["PORT"] == 9000 and config["SITE_URL"] == "http://localhost:9000"
        assert config["TZ"] == "Asia/Tokyo" and config["MAX_LABELS"] == 5

    def test_the_factory_applies_all_three_layers(self, clean_env, monkeypatch):
        monkeypatch.setenv("MAX_LABELS", "77")
        monkeypatch.setenv("PAGE_SIZE", "ignored: not a setting read from the environment")
        app = create_app(app_config(clean_env / "data", CHUNK_LABELS=10))
        try:
            assert app.config["MAX_LABELS"] == 77 and app.config["CHUNK_LABELS"] == 10
            assert app.config["PAGE_SIZE"] == config_module.DEFAULTS["PAGE_SIZE"]
            assert app.config["TESTING"] and app.config["BROKER"] == "stub"
            assert Path(app.config["PRESSROOM_DATA"]).is_dir()
        finally:
            with app.app_context():
                db.engine.dispose()

    def test_each_app_has_its_own_config(self, make_app):
        first, second = make_app(MAX_LABELS=1), make_app(MAX_LABELS=2)
        assert (first.config["MAX_LABELS"], second.config["MAX_LABELS"]) == (1, 2)


class TestSecretKey:
    """SECRET_KEY is generated once, by init-db, into $PRESSROOM_DATA — never per process."""

    def _app(self, data: Path):
        config = app_config(data)
        config.pop("SECRET_KEY")
        return create_app(config)

    def test_init_db_creates_the_key_once_and_every_app_reads_the_same(self, clean_env):
        data = clean_env / "data"
        app = self._app(data)
        assert (
            app.config["SECRET_KEY"] is None
        )  # not made up at start (gunicorn workers would differ)
        apps = [app]
        try:
            assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
            key = app.config["SECRET_KEY"]
            assert key and len(key) >= 32
            assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
            assert app.config["SECRET_KEY"] == key  # a second init-db keeps it
            path = config_module.secret_key_file(data)
            assert path.read_text().strip() == key
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            later = self._app(data)  # another process starting later
            apps.append(later)
            assert later.config["SECRET_KEY"] == key
        finally:
            for each in apps:
                with each.app_context():
                    db.engine.dispose()

    def test_ensure_secret_key_returns_the_existing_key(self, tmp_path):
        first = config_module.ensure_secret_key(tmp_path)
        assert config_module.ensure_secret_key(tmp_path) == first
        assert list(tmp_path.iterdir()) == [config_module.secret_key_file(tmp_path)]  # no temp left

    def test_a_session_from_one_process_is_valid_in_another(self, clean_env):
        from tests.conftest import add_user

        data = clean_env / "data"
        first = self._app(data)
        first.test_cli_runner().invoke(args=["init-db"])
        second = self._app(data)
        try:
            with first.app_context():
                add_user()
            browser = first.test_client()
            browser.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
            cookie = browser.get_cookie("session")
            assert cookie is not None
            other = second.test_client()
            other.set_cookie("session", cookie.value)
            assert other.get("/jobs/").status_code == 200
        finally:
            for each in (first, second):
                with each.app_context():
                    db.engine.dispose()


class TestRedisSocketPath:
    """The embedded Redis's unix socket path stays under 100 bytes (longer ones are cut silently)."""

    def test_a_short_data_dir_keeps_the_socket_inside_it(self, tmp_path):
        data = Path("/tmp/pr")
        assert config_module.redis_socket_path(data) == data / "redis.sock"

    def test_a_long_data_dir_gets_a_short_stable_socket_path(self, clean_env, monkeypatch):
        data = clean_env / ("a-very-long-folder-name-" * 6) / "pressroom-data"
        assert len(str(data).encode()) > 100
        path = config_module.redis_socket_path(data)
        assert len(str(path).encode()) < 100
        assert config_module.redis_socket_path(data) == path  # every process finds the same one
        assert config_module.redis_socket_path(data / "other") != path
        monkeypatch.setenv("PRESSROOM_DATA", str(data))
        assert config_module.load()["REDIS_URL"] == f"unix://{path}"

    def test_a_data_dir_with_multibyte_names_is_measured_in_bytes(self, tmp_path):
        data = Path("/tmp") / ("ü" * 45)  # 45 characters, 90 bytes
        path = config_module.redis_socket_path(data)
        assert len(str(path).encode()) < 100
