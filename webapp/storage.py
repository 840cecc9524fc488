"""Where published files live: one interface, two stores (DESIGN §5 `ARTIFACTS_URL`).

- `LocalStorage` (the default): `ARTIFACT_DIR` (`$PRESSROOM_DATA/artifacts`), the paths of
  today. Publishing is fsync + rename, so a file is whole or absent.
- `S3Storage` (`ARTIFACTS_URL=s3://bucket/prefix`, `S3_ENDPOINT_URL` for an S3-compatible
  server, credentials from the standard AWS environment, region `AWS_REGION` /
  `AWS_DEFAULT_REGION` or us-east-1): objects under `prefix/` with the same keys. A PutObject
  (or a multipart upload's completion) is atomic: an object is whole or absent.

Keys are the artifact rows' `path` (`ab/<sha256><suffix>`, content-addressed: the same key means
the same bytes, so a key that exists is kept, never rewritten), `chunks/<job>/<index><suffix>`
for the parts of a split job, and never `tmp/`: workers render and merge on local disk
(`ARTIFACT_DIR/tmp`, under `PRESSROOM_DATA`) whatever the store, and publish = upload, then
record (the database row is written only after the upload succeeded).

Downloads from S3 are streamed through the app, a ranged GetObject per request, not redirected
to a presigned URL: the answer is the same as from local disk (ETag = sha256, Range/206,
If-Range, 304, Last-Modified, our Content-Disposition — all decided by Werkzeug as for a local
file), the URLs and their auth stay ours (a Bearer token or a session, checked on every
request; a presigned URL is a bearer secret that works for anyone until it expires), and the
store may be a private endpoint that browsers cannot reach (localhost in the tests, the
nursery's LAN). The cost is the bytes passing through a web thread (gthread workers, DESIGN §5).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app

T = TypeVar("T")
_EXTENSION = "pressroom.storage"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # seconds since the epoch


@dataclass(frozen=True)
class Usage:
    """What a store holds (`bytes`, `objects`); `free`/`total` where a disk has a size."""

    bytes: int
    objects: int
    free: int | None = None
    total: int | None = None


class StorageError(OSError):
    """The object store failed (unreachable, refused): an OSError, so a job retries it."""


class Storage(Protocol):
    url: str

    def stage(self, local: Path, key: str) -> None:
        """Before the publishing transaction: upload `local` (kept) unless `key` exists."""

    def put(self, local: Path, key: str) -> None:
        """Publish `local` at `key` atomically; an existing key is kept as is (same key, same
        bytes). `local` is consumed (moved or removed)."""

    def replace(self, local: Path, key: str) -> None:
        """Publish `local` at `key`, overwriting whatever is there (a split job's part: its key
        is its index, not its content, and a stale attempt's upload must not survive)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None:
        """The stored size, None when `key` is absent."""

    def local_path(self, key: str) -> Path | None:
        """The file itself where the store is a local folder; None for a remote store."""

    def open(self, key: str) -> IO[bytes]:
        """A seekable binary reader (FileNotFoundError when absent); a remote store fetches
        only the bytes read, from the position sought."""

    def fetch(self, key: str, dest: Path) -> None:
        """Copy the object to the local file `dest` (FileNotFoundError when absent)."""

    def read_bytes(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None:
        """Remove `key` (absent is fine)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under `prefix` ("chunks/<job>/"); → how many."""

    def iter(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every stored key under `prefix`."""

    def folders(self, prefix: str) -> list[str]:
        """The names one level below `prefix` ("chunks/" → job ids)."""

    def usage(self) -> Usage:
        """Everything stored (temp files and parts included), walked or listed page by page."""


# -- the local folder ---------------------------------------------------------------------------


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri() if root.is_absolute() else str(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def stage(self, local: Path, key: str) -> None:
        return None  # a rename inside the transaction is instant

    def put(self, local: Path, key: str) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fsync_file(local)
        if final.exists():  # content-addressed: the same name means the same bytes
            local.unlink(missing_ok=True)
            return
        self._move(local, final)

    def replace(self, local: Path, key: str) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fsync_file(local)
        self._move(local, final)

    @staticmethod
    def _move(local: Path, final: Path) -> None:
        os.replace(local, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def open(self, key: str) -> IO[bytes]:
        return self._path(key).open("rb")

    def fetch(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder = self._path(prefix.rstrip("/"))
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def iter(self, prefix: str = "") -> Iterator[StoredObject]:
        start = self._path(prefix.rstrip("/")) if prefix else self.root
        if not start.is_dir():
            return
        for path in sorted(start.rglob("*")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file():
                key = path.relative_to(self.root).as_posix()
                yield StoredObject(key, stat.st_size, stat.st_mtime)

    def folders(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def usage(self) -> Usage:
        size = objects = 0
        for item in self.iter():
            size += item.size
            objects += 1
        disk = shutil.disk_usage(self.root if self.root.exists() else self.root.parent)
        return Usage(size, objects, disk.free, disk.total)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- an S3 bucket (or an S3-compatible server) ---------------------------------------------------


class S3Storage:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"ARTIFACTS_URL must look like s3://bucket/prefix, not {url!r}")
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.prefix = f"{self.prefix}/" if self.prefix else ""
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or "us-east-1",
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    # Path-style works with every S3-compatible server (a bucket name is no
                    # host name on localhost or a LAN address).
                    s3={"addressing_style": "path"},
                ),
            )
        self.client = client

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _call(self, action: Callable[[], T], key: str = "") -> T:
        """Run one S3 call; a missing object is FileNotFoundError, any other failure a
        StorageError (an OSError: the job that met it is retried)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(errno.ENOENT, "no such object", self._key(key)) from exc
            raise StorageError(errno.EIO, f"object storage {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(errno.EIO, f"object storage {self.bucket}: {exc}") from exc

    def stage(self, local: Path, key: str) -> None:
        if not self.exists(key):
            self._upload(local, key)

    def put(self, local: Path, key: str) -> None:
        if not self.exists(key):  # (a staged upload: one HEAD)
            self._upload(local, key)
        local.unlink(missing_ok=True)

    def replace(self, local: Path, key: str) -> None:
        self._upload(local, key)
        local.unlink(missing_ok=True)

    def _upload(self, local: Path, key: str) -> None:
        # upload_file goes multipart above 8 MB; the object appears only when it is complete.
        self._call(lambda: self.client.upload_file(str(local), self.bucket, self._key(key)), key)

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self._call(
                lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)), key
            )
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def size(self, key: str) -> int | None:
        head = self.head(key)
        return None if head is None else int(head["ContentLength"])

    def local_path(self, key: str) -> Path | None:
        return None

    def open(self, key: str) -> IO[bytes]:
        size = self.size(key)
        if size is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", self._key(key))
        return S3Reader(self, key, size)  # type: ignore[return-value]

    def get(self, key: str, start: int, stop: int) -> Any:
        """The streaming body of bytes [start, stop)."""
        answer = self._call(
            lambda: self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{stop - 1}"
            ),
            key,
        )
        return answer["Body"]

    def fetch(self, key: str, dest: Path) -> None:
        self._call(lambda: self.client.download_file(self.bucket, self._key(key), str(dest)), key)

    def read_bytes(self, key: str) -> bytes:
        answer = self._call(
            lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key)), key
        )
        return bytes(self._call(answer["Body"].read, key))

    def delete(self, key: str) -> None:
        self._call(lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)), key)

    def delete_prefix(self, prefix: str) -> int:
        keys = [item.key for item in self.iter(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            self._call(
                lambda batch=batch: self.client.delete_objects(  # type: ignore[misc]
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            )
        return len(keys)

    def _pages(self, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix), **extra)
        iterator = iter(pages)
        while True:
            page = self._call(lambda: next(iterator, None))
            if page is None:
                return
            yield page

    def iter(self, prefix: str = "") -> Iterator[StoredObject]:
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                yield StoredObject(
                    item["Key"][len(self.prefix) :],
                    int(item["Size"]),
                    item["LastModified"].timestamp(),
                )

    def folders(self, prefix: str) -> list[str]:
        base = self._key(prefix.rstrip("/") + "/")
        names = []
        for page in self._pages(prefix.rstrip("/") + "/", Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(base) :].rstrip("/"))
        return sorted(names)

    def usage(self) -> Usage:
        size = objects = 0
        for item in self.iter():
            size += item.size
            objects += 1
        return Usage(size, objects)


class S3Reader:
    """A seekable reader over one object: each read after a seek asks for the bytes from there
    to `stop` (the end, or the range Werkzeug decided to send), so a 206 fetches only its range."""

    def __init__(self, store: S3Storage, key: str, size: int) -> None:
        self.store = store
        self.key = key
        self.length = size
        self.stop = size
        self.position = 0
        self.body: Any = None
        self.closed = False

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.length}[whence]
        target = max(0, base + offset)
        if target != self.position:
            self._drop()
            self.position = target
        return self.position

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.stop:
            return b""
        if self.body is None:
            self.body = self.store.get(self.key, self.position, self.stop)
        want = self.stop - self.position if size is None or size < 0 else size
        data = bytes(self.store._call(lambda: self.body.read(want), self.key))
        self.position += len(data)
        return data

    def _drop(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        self._drop()
        self.closed = True

    def __enter__(self) -> S3Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- which one -----------------------------------------------------------------------------------


def from_config(config: dict[str, Any]) -> Storage:
    url = config.get("ARTIFACTS_URL")
    if not url:
        return LocalStorage(Path(config["ARTIFACT_DIR"]))
    if url.startswith("s3://"):
        return S3Storage(url, endpoint_url=config.get("S3_ENDPOINT_URL"))
    if url.startswith("file://"):
        return LocalStorage(Path(urlsplit(url).path))
    raise ValueError(f"ARTIFACTS_URL: unknown store {url!r} (s3://bucket/prefix, or unset)")


def of(app: Flask) -> Storage:
    """The app's store: the local folder as configured now, or one S3 client per process and
    configuration (boto3 clients are thread-safe)."""
    config = app.config
    if not config.get("ARTIFACTS_URL"):
        return LocalStorage(Path(config["ARTIFACT_DIR"]))
    wanted = (config["ARTIFACTS_URL"], config.get("S3_ENDPOINT_URL"))
    cached = app.extensions.get(_EXTENSION)
    if cached is None or cached[0] != wanted:
        with _LOCK:
            cached = app.extensions.get(_EXTENSION)
            if cached is None or cached[0] != wanted:
                cached = app.extensions[_EXTENSION] = (wanted, from_config(config))
    return cached[1]


def current() -> Storage:
    return of(current_app._get_current_object())  # type: ignore[attr-defined]
