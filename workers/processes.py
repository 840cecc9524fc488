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
#: Web processes per core by default (at most MAX_WEB_PROCESSES) and threads in each. A submit
#: and a rendered status fragment are CPU-bound Python: threads of one process take turns on
#: its GIL, and a keep-alive connection stays with the process that accepted it, so two busy
#: processes on two cores sometimes share the load unevenly (docs/benchmarks.md "Web processes
#: and threads": 4 x 2 answered fragments 1,650/s against 1,150 with 2 x 8, submits at p99
#: 40-89 ms against 81-85). An idle keep-alive connection holds no thread; a download does:
#: raise WEB_THREADS where many slow downloads run at once (docs/deploy.md).
WEB_PROCESSES_PER_CORE = 2
MAX_WEB_PROCESSES = 8
WEB_THREADS = 2

#: Defaults the Procfile falls back to where the platform sets nothing (a 2-core machine's).
PROCFILE_DEFAULTS = {
    "WEB_PROCESSES": "4",
    "WEB_THREADS": str(WEB_THREADS),
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
        "WEB_PROCESSES": str(config.get("WEB_PROCESSES") or web_processes(cpus)),
        "WEB_THREADS": str(config.get("WEB_THREADS") or WEB_THREADS),
        "PORT": str(config["PORT"]),
        "WORKER_PROCESSES": str(config["WORKER_PROCESSES"]),
        "WORKER_THREADS": str(config["WORKER_THREADS"]),
    }
    return {name: _argv(template, values) for name, template in PROCESSES.items()}


def web_processes(cpus: int) -> int:
    """The default number of web processes on a machine with `cpus` cores."""
    return max(2, min(MAX_WEB_PROCESSES, WEB_PROCESSES_PER_CORE * cpus))


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
