"""The production processes, in one table: `pressroom run` starts them and the Procfile lists them.

Each command is a template over settings (`{WEB_PROCESSES}` …). `process_commands` fills it
with this machine's values for the supervisor; `procfile` writes the same commands with
`${VAR:-default}` for a platform that reads a Procfile (a test keeps the file in step).
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from webapp.jobs.queues import QUEUES

#: Environment of worker processes: one message at a time per process (a dead process holds no
#: backlog), and idle workers poll Redis every 0.1 s instead of 1 s (~0.5 s off every job).
WORKER_ENV = {"dramatiq_queue_prefetch": "1", "dramatiq_worker_timeout": "100"}

#: name → command; {NAME} is a setting, `python` the interpreter of this installation.
PROCESSES: dict[str, str] = {
    # gunicorn 23+ opens ~/.gunicorn/gunicorn.ctl by default, shared machine-wide: not ours.
    # --limit-request-line 0: the app refuses long URLs itself (414, JSON under /api/:
    # webapp/views/errors.py MAX_URL_LENGTH), gunicorn's own refusal would be an HTML page.
    "web": "python -m gunicorn --worker-class gthread --threads {WEB_THREADS} "
    "--workers {WEB_PROCESSES} "
    "--bind 0.0.0.0:{PORT} --access-logfile - --graceful-timeout 10 --no-control-socket "
    "--limit-request-line 0 'webapp.wsgi:app'",
    # Dramatiq's own worker command (so "dramatiq" is in its command line), both queues.
    "worker": "python -m dramatiq workers.broker:setup workers.actors --processes "
    "{WORKER_PROCESSES} --threads {WORKER_THREADS} --queues "
    + " ".join(QUEUES)
    + " --worker-shutdown-timeout 10000",
    "scheduler": "python -m workers.scheduler",
}
#: Defaults the Procfile falls back to where the platform sets nothing.
PROCFILE_DEFAULTS = {
    "WEB_PROCESSES": "2",
    "WEB_THREADS": "8",
    "PORT": "5000",
    "WORKER_PROCESSES": "2",
    "WORKER_THREADS": "1",
}


def _argv(template: str, values: dict[str, str]) -> list[str]:
    argv = shlex.split(template.format(**values))
    return [sys.executable if arg == "python" else arg for arg in argv]


def process_commands(config: dict[str, Any], cpus: int) -> dict[str, list[str]]:
    """The commands with this machine's settings, for the supervisor."""
    values = {
        "WEB_PROCESSES": str(config.get("WEB_PROCESSES") or min(4, cpus)),
        "WEB_THREADS": str(config.get("WEB_THREADS") or 8),
        "PORT": str(config["PORT"]),
        "WORKER_PROCESSES": str(config["WORKER_PROCESSES"]),
        "WORKER_THREADS": str(config["WORKER_THREADS"]),
    }
    return {name: _argv(template, values) for name, template in PROCESSES.items()}


def worker_argv(processes: int, threads: int = 1) -> list[str]:
    """The worker command alone (tests and benchmarks start workers this way)."""
    return _argv(
        PROCESSES["worker"], {"WORKER_PROCESSES": str(processes), "WORKER_THREADS": str(threads)}
    )


def procfile() -> str:
    """The Procfile's text: the same commands, settings read from the environment."""
    lines = []
    env = " ".join(f"{k}={v}" for k, v in WORKER_ENV.items())
    for name, template in PROCESSES.items():
        command = template.format(**{k: f"${{{k}:-{v}}}" for k, v in PROCFILE_DEFAULTS.items()})
        if name == "worker":
            command = f"env {env} {command}"
        lines.append(f"{name}: {command}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(procfile())
