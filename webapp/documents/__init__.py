"""Document kinds are plugins: each validates its parameters, names its file and renders.

A kind's `prepare` turns raw parameters into a `Prepared` (normalised parameters, the version of
the data they read, the number of progress units). The engine hashes kind + parameters + data
version into the job's input hash, so identical requests share one job and one file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from webapp.jobs.lease import Lease
    from webapp.models import Job, User


@dataclass(frozen=True)
class Prepared:
    params: dict[str, Any]
    data_version: str
    total: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """A slice of a big batch rendered by one chunk: progress units [start, stop)."""

    index: int
    start: int
    stop: int


class DocumentKind(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    suffix: ClassVar[str] = ".pdf"
    media_type: ClassVar[str] = "application/pdf"

    @abstractmethod
    def prepare(self, params: Any, owner: User | None) -> Prepared:
        """Validate and normalise `params`; raise `InvalidParams` with a message a person can act on."""

    @abstractmethod
    def file_name(self, job: Job) -> str:
        """The download's file name."""

    def plan_parts(self, job: Job, labels_per_part: int) -> list[Part]:
        """Split a big job into parts rendered in parallel; an empty list renders it whole."""
        return []

    @abstractmethod
    def render(self, job: Job, lease: Lease, out: Path, part: Part | None) -> None:
        """Write the document (or one part of it) to `out`, reporting progress through `lease`."""


_KINDS: dict[str, DocumentKind] = {}


def register(kind: DocumentKind) -> DocumentKind:
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> DocumentKind | None:
    _load_builtin()
    return _KINDS.get(name)


def names() -> list[str]:
    _load_builtin()
    return sorted(_KINDS)


def _load_builtin() -> None:
    if not _KINDS:
        import importlib
        import os

        from webapp.documents import potting_lots  # noqa: F401  (registers itself)

        # Test-only kinds (e.g. tests/support/paced.py): modules named in PRESSROOM_EXTRA_KINDS,
        # comma-separated, register themselves on import. Never set in production.
        for module in filter(None, os.environ.get("PRESSROOM_EXTRA_KINDS", "").split(",")):
            importlib.import_module(module.strip())
