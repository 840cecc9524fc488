"""Artifact files: rendered to a local temp file, then published to the store (webapp/storage.py:
the artifact folder, or S3) under their content address; never rewritten in place."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
from pathlib import Path

from flask import current_app

from webapp import storage


def root() -> Path:
    return Path(current_app.config["ARTIFACT_DIR"])


def temp_path(suffix: str) -> Path:
    """A fresh temp file path inside the artifact directory (same file system: rename is atomic),
    named after the process that writes it, so the reaper removes a dead worker's at once."""
    tmp = root() / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    owner = temp_owner(os.getpid(), socket.gethostname())
    return tmp / f"{owner}{secrets.token_hex(8)}{suffix}.part"


def temp_owner(pid: int, host: str) -> str:
    """The prefix of the temp files (and folders: webapp/exports.py) of process `pid`."""
    return f"{pid}@{host}."


def remove_temp_of(worker: str) -> int:
    """Remove the temp files and folders of `worker` ("host:pid"), a process that is gone."""
    host, _, pid = worker.rpartition(":")
    tmp = root() / "tmp"
    if not pid.isdigit() or not tmp.is_dir():
        return 0
    prefix = temp_owner(int(pid), host)
    removed = 0
    for path in tmp.iterdir():
        if path.name.startswith(prefix):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    return removed


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store() -> storage.Storage:
    return storage.current()


def stage(tmp: Path, relative: str) -> None:
    """Upload `tmp` before the publishing transaction (a remote store; a no-op on local disk),
    so that the transaction only checks that the object is there."""
    store().stage(tmp, relative)


def publish(tmp: Path, relative: str) -> None:
    """Move a finished temp file to its final key atomically; an existing twin is kept as is."""
    store().put(tmp, relative)


def publish_part(tmp: Path, key: str) -> None:
    """A split job's part, inside the transaction that counted it (its lease checked first):
    it replaces whatever an earlier, stale attempt may have left at its index."""
    store().replace(tmp, key)


def exists(relative: str) -> bool:
    return store().exists(relative)


def content_path(sha256: str, suffix: str) -> str:
    return f"{sha256[:2]}/{sha256}{suffix}"


def path_lock(relative: str) -> str:
    """The lock name (webapp.db.serialize_on) under which a published file is pointed at or
    removed."""
    return f"artifact-file {relative}"


def remove(path: Path) -> None:
    """A local temp file."""
    path.unlink(missing_ok=True)


def delete(relative: str) -> None:
    """A published file (retention)."""
    store().delete(relative)


def local_copy(relative: str, dest: Path) -> Path:
    """A local path with the file's bytes: the file itself on local disk, else a download to
    `dest` (a temp path the caller removes). FileNotFoundError when it is gone."""
    path = store().local_path(relative)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(relative)
        return path
    store().fetch(relative, dest)
    return dest
