"""The potting-lot rows a user has ticked, kept in the session so ticks survive paging.

Two shapes, as mail programs do it: ticked ids (at most MAX_TICKED, ticked one by one or a
page at a time), or "every lot a filter selects" minus the ids unticked since (any number of
lots, in a few bytes of session)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import session

from webapp.extensions import db
from webapp.models import PottingLot
from webapp.nursery.filters import FilterError, LotFilter, ordered

KEY = "lot_selection"
MAX_TICKED = 500  # ids kept one by one (the session is a cookie: ≤ 2 KB); more: "tick all matching"


class TooManyTicked(ValueError):
    pass


@dataclass
class Selection:
    ids: set[int] = field(default_factory=set)
    every: dict[str, str] | None = None  # a filter's dict: every lot it selects …
    excluded: set[int] = field(default_factory=set)  # … except these

    @classmethod
    def load(cls) -> Selection:
        raw = session.get(KEY) or {}
        every = raw.get("every")
        if every is not None:
            try:
                LotFilter.from_mapping(every)
            except FilterError:
                every = None
        return cls(
            ids={int(i) for i in raw.get("ids", [])},
            every=every,
            excluded={int(i) for i in raw.get("except", [])},
        )

    def save(self) -> None:
        if not self:
            session.pop(KEY, None)
            return
        session[KEY] = {
            "ids": sorted(self.ids),
            "every": self.every,
            "except": sorted(self.excluded),
        }

    def __bool__(self) -> bool:
        return bool(self.ids) or self.every is not None

    @property
    def lot_filter(self) -> LotFilter | None:
        return None if self.every is None else LotFilter.from_mapping(self.every)

    def tick(self, ids: Iterable[int], on: bool) -> None:
        ids = set(ids)
        if self.every is not None:
            self.excluded = self.excluded - ids if on else self.excluded | ids
            kept = self.excluded
        else:
            self.ids = self.ids | ids if on else self.ids - ids
            kept = self.ids
        if len(kept) > MAX_TICKED:
            raise TooManyTicked(len(kept))

    def select_every(self, lot_filter: LotFilter) -> None:
        self.ids, self.every, self.excluded = set(), lot_filter.as_dict(), set()

    def _query(self, *columns: Any) -> sa.Select:
        """The selected lots (existing ones only: a deleted lot is not counted)."""
        lot_filter = self.lot_filter
        if lot_filter is not None:
            query = lot_filter.apply(sa.select(*columns))
            if self.excluded:
                query = query.where(PottingLot.id.not_in(sorted(self.excluded)))
            return query
        return sa.select(*columns).where(PottingLot.id.in_(sorted(self.ids) or [0]))

    def count(self) -> int:
        if not self:
            return 0
        subquery = self._query(PottingLot.id).subquery()
        return db.session.scalar(sa.select(sa.func.count()).select_from(subquery)) or 0

    def ticked_among(self, ids: Iterable[int]) -> set[int]:
        """Which of these ids (one page's rows) are ticked."""
        ids = sorted(set(ids))
        if not self or not ids:
            return set()
        return set(db.session.scalars(self._query(PottingLot.id).where(PottingLot.id.in_(ids))))

    def lot_ids(self) -> list[int]:
        """The ticked lots' ids in print order."""
        return list(db.session.scalars(ordered(self._query(PottingLot.id)))) if self else []

    def first_lots(self, limit: int) -> list[PottingLot]:
        return list(db.session.scalars(ordered(self._query(PottingLot)).limit(limit)))
