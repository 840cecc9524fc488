"""`pressroom run` as a person runs it: everything starts, a dead worker comes back, Ctrl-C ends all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.services import processes_of
from workers.waiting import free_port

pytestmark = pytest.mark.integration
PRESSROOM = Path(sys.executable).parent / "pressroom"


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def niceness(pid: int) -> tuple[int, int]:
    """(parent pid, niceness) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[16])


def autogroups() -> bool:
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return enabled.exists() and enabled.read_text().strip() == "1"


def autogroup_nice(pid: int) -> int:
    """The niceness of a process's session group: "/autogroup-123 nice 10". A process in the
    kernel's default group (nothing above it started a session since boot, as in some
    containers) reads an empty file: that group is the root's, at nice 0."""
    words = Path(f"/proc/{pid}/autogroup").read_text().split()
    return int(words[-1]) if words else 0


@pytest.fixture
def service() -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    data = Path(tempfile.mkdtemp(prefix="pr-sup-", dir="/tmp"))
    port = free_port()
    env = dict(
        os.environ,
        PRESSROOM_DATA=str(data),
        PORT=str(port),
        WORKER_PROCESSES="1",
        WEB_PROCESSES="1",
        REDIS_URL="",
        REAPER_INTERVAL_S="0.5",
    )
    log = (data / "run.log").open("wb")
    process = subprocess.Popen(
        [str(PRESSROOM), "run", "--demo", "--lots", "5"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process, data, port
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in processes_of(data):
        os.kill(pid, signal.SIGKILL)
    log.close()
    shutil.rmtree(data, ignore_errors=True)


def test_a_dead_worker_is_restarted_and_ctrl_c_stops_everything(service):
    """Given `pressroom run` serving, when a worker process is SIGKILLed the worker command comes
    back; when Ctrl-C arrives twice, every process it started is gone."""
    process, data, port = service
    wait_for(lambda: healthy(port), timeout=90, message="/healthz")
    workers = wait_for(
        lambda: [p for p, cmd in processes_of(data).items() if "dramatiq" in cmd],
        timeout=60,
        message="dramatiq processes",
    )
    names = processes_of(data).values()
    assert any("redis-server" in cmd for cmd in names) and any("gunicorn" in cmd for cmd in names)
    assert any("workers.scheduler" in cmd for cmd in names)

    # The rendering processes (Dramatiq's children) yield the CPU to the web: WORKER_NICE, 10
    ours = os.getpriority(os.PRIO_PROCESS, 0)

    def renderers() -> list[int]:
        dramatiq = [p for p, cmd in processes_of(data).items() if "dramatiq" in cmd]
        children = [pid for pid in dramatiq if niceness(pid)[0] in dramatiq]
        return children if all(niceness(pid)[1] == max(ours, 10) for pid in children) else []

    rendering = wait_for(renderers, timeout=60, message="worker processes at niceness 10")
    web = [p for p, cmd in processes_of(data).items() if "gunicorn" in cmd]
    assert web and all(niceness(pid)[1] == ours for pid in web)
    if autogroups():  # the kernel shares the CPU by session first: the workers' session too
        assert all(autogroup_nice(pid) == 10 for pid in rendering)
        assert all(autogroup_nice(pid) == autogroup_nice(os.getpid()) for pid in web)

    # When: one worker process dies
    os.kill(max(workers), signal.SIGKILL)

    # Then: Dramatiq's master exits and the supervisor starts the whole worker command again
    wait_for(
        lambda: (
            (new := [p for p, cmd in processes_of(data).items() if "dramatiq" in cmd])
            and not set(new) & set(workers)
            and len(new) >= 2
        ),
        timeout=60,
        message="a new worker command",
    )
    assert healthy(port)

    # When: Ctrl-C, twice (a second press must not hang the shutdown)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert processes_of(data) == {}
