"""A real S3-protocol server on localhost for the tests: moto's server mode in its own process
(`python -m moto.server`), so the web and worker processes of a stack reach it like any
S3-compatible endpoint. Its data lives in memory and goes with the process."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from workers.waiting import free_port, wait_for

#: Dummy credentials: moto accepts any; boto3 refuses to sign without some.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "pressroom-test",
    "AWS_SECRET_ACCESS_KEY": "pressroom-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env={**os.environ, **CREDENTIALS},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(self._answers, 60, interval=0.1, message=f"moto's S3 server on {self.endpoint}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"moto.server exited:\n{self.log.read_text(errors='replace')}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/")
                return conn.getresponse().status < 500
            finally:
                conn.close()
        except OSError:
            return False

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        """Every key in `bucket` under `prefix` (all pages)."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def stop(self) -> None:
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@contextmanager
def moto_server(log: Path) -> Iterator[MotoServer]:
    server = MotoServer(log)
    try:
        server.start()
        yield server
    finally:
        server.stop()
