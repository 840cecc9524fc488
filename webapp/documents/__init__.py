"""Document kinds, listed in one place (`_builtin`); each is a module of this package.

Test-only kinds (tests/support/paced.py) come from the modules named in PRESSROOM_EXTRA_KINDS,
comma-separated, which call `register` on import. It is never set in production.
"""

from __future__ import annotations

import importlib
import os
import threading

from webapp.documents.base import DocumentKind, FieldProblem, Part, Prepared, RenderContext

__all__ = [
    "DocumentKind",
    "FieldProblem",
    "Part",
    "Prepared",
    "RenderContext",
    "get",
    "names",
    "register",
]

_KINDS: dict[str, DocumentKind] = {}
_loaded = False


def _builtin() -> list[DocumentKind]:
    from webapp.documents.bulk import BulkMail, BulkProtocolUpdate
    from webapp.documents.lab_exports import ProtocolsCsv, ProtocolsXlsx, ReportsCsv
    from webapp.documents.potting_lot_exports import PottingLotsCsv, PottingLotsXlsx
    from webapp.documents.potting_lots import PottingLotLabels
    from webapp.documents.reception_labels import ReceptionLabelKind, ReceptionLabelsDay
    from webapp.documents.regenerate import Regenerate
    from webapp.documents.reports import ReportFinal
    from webapp.documents.stats import StatsDaily, StatsWeekly
    from webapp.documents.work_orders import WorkOrderKind

    return [
        PottingLotLabels(),
        PottingLotsCsv(),
        PottingLotsXlsx(),
        ReceptionLabelKind(),
        ReceptionLabelsDay(),
        ReportFinal(),
        WorkOrderKind(),
        ProtocolsCsv(),
        ProtocolsXlsx(),
        ReportsCsv(),
        Regenerate(),
        BulkProtocolUpdate(),
        BulkMail(),
        StatsDaily(),
        StatsWeekly(),
    ]


_LOADING = threading.RLock()  # re-entrant: an extra kinds' module registers while loading


def register(kind: DocumentKind) -> DocumentKind:
    _KINDS[kind.name] = kind
    return kind


def _load() -> dict[str, DocumentKind]:
    global _loaded
    if _loaded:
        return _KINDS
    # The first lookups of a web process come from several threads at once: one fills the
    # registry while the others wait (they saw an empty one before: "Unknown kind").
    with _LOADING:
        if not _loaded:  # (a test may have registered its own kind before the first lookup)
            for kind in _builtin():
                _KINDS.setdefault(kind.name, kind)
            for module in filter(None, os.environ.get("PRESSROOM_EXTRA_KINDS", "").split(",")):
                importlib.import_module(module.strip())
            _loaded = True
    return _KINDS


def get(name: str) -> DocumentKind | None:
    return _load().get(name)


def names() -> list[str]:
    return sorted(_load())
