"""The contract of a document kind (DESIGN §3a). A kind is one module plus its templates.

A kind validates its parameters with a pydantic model (`Params`), turns them into a `Prepared`
(normalised parameters, a cheap version of the data they read, the number of progress units,
a summary for the pages), names its subject and its file, and renders; a big job may be split
into parts rendered in parallel and merged by the kind. The engine hashes kind + parameters +
data version into the job's input hash, so identical requests share one job and one file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from webapp.errors import InvalidParams
from webapp.messages import Msg

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from webapp.models import Job, User


@dataclass(frozen=True)
class Prepared:
    params: dict[str, Any]
    data_version: str
    total: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """A slice of a big job rendered by one chunk: progress units [start, stop)."""

    index: int
    start: int
    stop: int


class RenderContext(Protocol):
    """What a render gets from the engine: progress (also heartbeat, cancel check, deadline)
    and temp paths with the kind's suffix, removed when the attempt ends."""

    def progress(
        self,
        done: int,
        step: str | None = None,
        *,
        force: bool = False,
        items: dict[str, int] | None = None,
        **params: Any,
    ) -> None: ...

    def temp_path(self) -> Path: ...


class FieldProblem(ValueError):
    """Raised by a params validator: the field's message as a code (pydantic passes it on).

    `field` names the field when a whole-model check finds it (pydantic gives those no path)."""

    def __init__(self, code: str, *, field: str | None = None, **params: Any) -> None:
        self.msg = Msg(code, params)
        self.field = field
        super().__init__(code)


# pydantic's error types → our message codes (and which context value fills them).
_PYDANTIC: dict[str, tuple[str, str | None]] = {
    "missing": ("field_required", None),
    "extra_forbidden": ("field_unknown", None),
    "int_type": ("field_integer", None),
    "int_parsing": ("field_integer", None),
    "int_from_float": ("field_integer", None),
    "float_type": ("field_number", None),
    "float_parsing": ("field_number", None),
    "finite_number": ("field_number", None),
    "string_type": ("field_text", None),
    "list_type": ("field_list", None),
    "dict_type": ("field_object", None),
    "model_type": ("field_object", None),
    "model_attributes_type": ("field_object", None),
    "bool_type": ("field_boolean", None),
    "bool_parsing": ("field_boolean", None),
    "date_type": ("field_date", None),
    "date_parsing": ("field_date", None),
    "date_from_datetime_parsing": ("field_date", None),
    "greater_than_equal": ("field_min", "ge"),
    "greater_than": ("field_min", "gt"),
    "less_than_equal": ("field_max", "le"),
    "less_than": ("field_max", "lt"),
    "too_short": ("field_too_short", "min_length"),
    "too_long": ("field_too_long", "max_length"),
    "string_too_short": ("field_too_short", "min_length"),
    "string_too_long": ("field_too_long", "max_length"),
    "literal_error": ("field_choice", "expected"),
    "enum": ("field_choice", "expected"),
}


def field_errors(exc: ValidationError) -> dict[str, Msg]:
    """pydantic's errors as {"copies": Msg, "filter.week": Msg}: the first error per field."""
    fields: dict[str, Msg] = {}
    for error in exc.errors(include_url=False):
        # A list item's error belongs to its list's field ("lot_ids", not "lot_ids.0").
        path = ".".join(str(part) for part in error["loc"] if not isinstance(part, int)) or "params"
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, FieldProblem):
            path = cause.field or path
            if path not in fields:
                fields[path] = cause.msg
            continue
        if path in fields:
            continue
        code, key = _PYDANTIC.get(error["type"], ("field_invalid", None))
        value = ctx.get(key) if key else None
        if isinstance(value, int | float | str):
            fields[path] = Msg(code, {"limit" if code != "field_choice" else "choices": value})
        else:
            fields[path] = Msg(code if key is None else "field_invalid")
    return fields


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], raw: Any, *, name: str = "params") -> M:
    """`raw` (a JSON object, a form) as `model`; `InvalidParams` names each bad field."""
    if not isinstance(raw, dict):
        raise InvalidParams.field(name, "field_object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        fields = field_errors(exc)
        first = next(iter(fields.values()))
        raise InvalidParams(first.code, fields=fields, **first.params) from None


class DocumentKind(ABC):
    """One kind of document. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    #: What pages call it (marked with N_, translated where shown).
    title: ClassVar[str]
    #: The unit `progress` counts: label, row, page, document, mail.
    unit: ClassVar[str] = "label"
    suffix: ClassVar[str] = ".pdf"
    media_type: ClassVar[str] = "application/pdf"
    #: Who may submit it; "system" marks kinds the schedules and the engine start.
    roles: ClassVar[frozenset[str]] = frozenset({"staff", "admin"})
    #: The parameters' schema.
    Params: ClassVar[type[BaseModel]]
    #: Config key of the most units one job may have (None: no limit).
    limit_key: ClassVar[str | None] = None
    #: Where the finished job's page links back to (an endpoint), and what the link says.
    back_endpoint: ClassVar[str | None] = None
    back_label: ClassVar[str] = ""
    #: A bulk job over many documents (regeneration): `children` names them, each becomes a job
    #: of its own in the bulk queue, and `merge` (with no parts) writes the bulk job's report.
    fans_out: ClassVar[bool] = False

    def parse(self, raw: Any) -> BaseModel:
        """Validate raw parameters; `InvalidParams` names each bad field."""
        return validate(self.Params, raw)

    @abstractmethod
    def prepare(self, params: Any, owner: User | None) -> Prepared:
        """Normalise validated params; the data version costs one query, never a full load."""

    def subject(self, params: dict[str, Any]) -> str | None:
        """The document's identity ("work_order:17"): one live job for everyone; None: per owner."""
        return None

    @abstractmethod
    def file_name(self, job: Job) -> str:
        """The download's file name."""

    def split(self, job: Job, config: dict[str, Any]) -> list[Part]:
        """Parts rendered in parallel and merged; an empty list renders the job whole."""
        return []

    def merge(self, job: Job, ctx: RenderContext, parts: list[Path], out: Path) -> None:
        """Join the parts' files, in order, into `out` (kinds that split must implement it);
        `ctx.progress` keeps the heartbeat and the cancel check going during a long merge."""
        raise NotImplementedError(f"{self.name} does not merge parts")

    @abstractmethod
    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        """Write the document (or one part of it) to `out`, reporting progress through `ctx`."""

    def children(self, job: Job) -> Iterable[tuple[str, dict[str, Any]]]:
        """A bulk kind's documents: (kind, params) of each, made as jobs of their own."""
        return ()

    def documents(self, session: Session, scope: Any) -> list[dict[str, Any]] | None:
        """The params of this kind's documents in `scope` ("all", "stale", or a datetime:
        changed since), for a regeneration; None: this kind is not regenerated."""
        return None

    def on_transition(
        self, session: Session, name: str, job_id: str, old: str | None, new: str
    ) -> None:
        """A hook in the transition's own transaction (e.g. write a mail to the outbox)."""
        return None

    def limit(self, config: dict[str, Any]) -> int | None:
        return int(config[self.limit_key]) if self.limit_key else None

    def may_submit(self, user: User | None) -> bool:
        if user is None:
            return "system" in self.roles
        return user.role in self.roles

    @property
    def templates(self) -> dict[str, str]:
        """The kind's own templates: its one-line summary and its finished state."""
        return {
            "summary": f"documents/{self.name}/_summary.html",
            "done": f"documents/{self.name}/_done.html",
        }
