"""`pressroom run`: the whole service on one machine, restarting whatever dies.

Starts the embedded Redis (when REDIS_URL is unset), prepares the database, then web (gunicorn,
threaded), worker (Dramatiq's own processes) and scheduler. Dramatiq's master exits when one of
its children dies, so a dead worker means restarting the whole worker command. Ctrl-C stops all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import click

from webapp import config as config_module
from workers.processes import WORKER_ENV, process_commands
from workers.stopflag import StopFlag

log = logging.getLogger("pressroom.supervisor")


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):  # it may end on its own meanwhile
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = StopFlag()

    def run(self) -> None:
        for child in self.children:
            if child.process is None and not self.stopping.requested:
                child.start()  # (the embedded Redis was started, and awaited, earlier)
        while not self.stopping.wait(0.5):
            for child in self.children:
                code = child.process.poll() if child.process else None
                if code is None:
                    continue
                # Back off when a process keeps dying right after its start.
                quick = time.monotonic() - child.started < 10
                child.restarts = child.restarts + 1 if quick else 0
                delay = min(30.0, 0.5 * 2**child.restarts) if quick else 0.0
                log.warning("%s exited with code %s; restarting in %.1f s", child.name, code, delay)
                if self.stopping.wait(delay):
                    break
                child.start()
        self.stop_all()

    def stop_all(self) -> None:
        """Stop in reverse start order: scheduler, workers, web, then Redis."""
        for child in reversed(self.children):
            child.stop()


def prepare(demo: bool, lots: int, protocols: int = 60) -> list[tuple[str, str]]:
    """Migrate the database and, with --demo on an empty database, add demo data."""
    import sqlalchemy as sa

    from webapp import create_app
    from webapp.cli import init_db, seed_demo
    from webapp.extensions import db
    from webapp.models import User

    app = create_app()
    metrics_dir = app.config.get("METRICS_DIR")
    if metrics_dir:  # counters of the processes of an earlier run would be merged in forever
        import shutil

        shutil.rmtree(metrics_dir, ignore_errors=True)
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    with app.app_context():
        init_db()
        logins: list[tuple[str, str]] = []
        if demo and db.session.scalar(sa.select(sa.func.count(User.id))) == 0:
            logins = seed_demo(lots, protocols)
        db.engine.dispose()
    return logins


@click.command("run")
@click.option("--demo", is_flag=True, help="Add demo users and potting lots to an empty database.")
@click.option("--lots", default=300, show_default=True, help="Demo potting lots.")
def run_command(demo: bool, lots: int) -> None:
    """Run the whole service: Redis (embedded unless REDIS_URL is set), web, workers, scheduler."""
    from workers import redis_server

    config = config_module.load()
    data = config_module.data_dir(config)
    data.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    supervisor = Supervisor(children)
    # From here on Ctrl-C only asks to stop: whatever was started is stopped in order below.
    supervisor.stopping.install(signal.SIGINT, signal.SIGTERM)
    env = dict(os.environ, PRESSROOM_DATA=str(data), PYTHONUNBUFFERED="1", **WORKER_ENV)
    if config.get("REDIS_EMBEDDED"):
        socket = config_module.redis_socket_path(data)
        process = redis_server.start(data, socket)
        conf = data / "redis" / "redis.conf"
        children.append(
            Child(
                "redis",
                [str(redis_server.BINARY), str(conf)],
                env,
                process=process,
                started=time.monotonic(),
            )
        )
    try:
        prepare(demo, lots)
    except BaseException:
        supervisor.stop_all()
        raise
    for name, argv in process_commands(config, os.cpu_count() or 1).items():
        children.append(Child(name, argv, env))
    url = config["SITE_URL"]
    click.echo(f"\n  Pressroom is starting on {url}  (data in {data})")
    if demo:
        from webapp.cli import DEMO_USERS

        for email, password, role, _name in DEMO_USERS:
            click.echo(f"  demo login ({role}): {email} / {password}")
    click.echo("  Ctrl-C stops everything.\n")
    supervisor.run()


if __name__ == "__main__":
    run_command()
