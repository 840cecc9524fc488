"""One process table: the Procfile and `pressroom run` start the same commands."""

from __future__ import annotations

import sys

from webapp import ROOT
from workers.processes import PROCESSES, process_commands, procfile, worker_argv


class TestProcessTable:
    def test_the_procfile_is_written_from_the_process_table(self):
        """Regenerate with `python -m workers.processes > Procfile` after changing the table."""
        assert (ROOT / "Procfile").read_text() == procfile()

    def test_the_supervisor_runs_every_process_of_the_procfile_with_this_machines_settings(self):
        config = {"PORT": 5123, "WORKER_PROCESSES": 3, "WORKER_THREADS": 1}
        commands = process_commands(config, cpus=2)
        assert set(commands) == set(PROCESSES) == {"web", "worker", "scheduler"}
        assert commands["web"][:3] == [sys.executable, "-m", "gunicorn"]
        assert "0.0.0.0:5123" in commands["web"] and "webapp.wsgi:app" in commands["web"]
        assert commands["web"][commands["web"].index("--workers") + 1] == "4"
        assert commands["worker"] == worker_argv(3, 1)

    def test_web_processes_and_threads_come_from_the_environment(self, monkeypatch):
        from webapp import config as config_module

        monkeypatch.setenv("WEB_PROCESSES", "5")
        monkeypatch.setenv("WEB_THREADS", "1")
        web = process_commands(config_module.load(), cpus=2)["web"]
        assert web[web.index("--workers") + 1] == "5" and web[web.index("--threads") + 1] == "1"
        monkeypatch.delenv("WEB_PROCESSES")
        monkeypatch.delenv("WEB_THREADS")
        web = process_commands(config_module.load(), cpus=2)["web"]
        assert web[web.index("--workers") + 1] == "4" and web[web.index("--threads") + 1] == "2"

    def test_two_web_processes_per_core_at_least_two_at_most_eight(self):
        config = {"PORT": 1, "WORKER_PROCESSES": 1, "WORKER_THREADS": 1}
        counts = {}
        for cpus in (1, 2, 3, 16):
            web = process_commands(config, cpus)["web"]
            counts[cpus] = web[web.index("--workers") + 1]
        assert counts == {1: "2", 2: "4", 3: "6", 16: "8"}

    def test_workers_are_dramatiqs_own_command_on_both_queues(self):
        argv = worker_argv(2)
        assert argv[:3] == [sys.executable, "-m", "dramatiq"]
        queues = argv[argv.index("--queues") + 1 : argv.index("--worker-shutdown-timeout")]
        assert queues == ["pressroom", "pressroom-bulk"]
