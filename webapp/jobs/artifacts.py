"""Artifact files: written to a temp file, fsynced, renamed; never rewritten in place."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from flask import current_app


def root() -> Path:
    return Path(current_app.config["ARTIFACT_DIR"])


def temp_path(suffix: str) -> Path:
    """A fresh temp file path inside the artifact directory (same file system: rename is atomic)."""
    tmp = root() / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp / f"{secrets.token_hex(8)}{suffix}.part"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, relative: str) -> Path:
    """Move a finished temp file to its final name atomically; an existing twin is kept as is."""
    final = root() / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    fsync_file(tmp)
    if final.exists():  # content-addressed: the same name means the same bytes
        tmp.unlink(missing_ok=True)
    else:
        os.replace(tmp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return final


def content_path(sha256: str, suffix: str) -> str:
    return f"{sha256[:2]}/{sha256}{suffix}"


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
