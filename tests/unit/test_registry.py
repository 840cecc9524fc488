"""The kinds' registry is filled once per process, also when the first lookups race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from webapp import documents


@pytest.fixture
def empty_registry():
    saved, loaded = dict(documents._KINDS), documents._loaded
    documents._KINDS.clear()
    documents._loaded = False
    yield
    documents._KINDS.clear()
    documents._KINDS.update(saved)
    documents._loaded = loaded


def test_the_first_lookups_of_many_threads_all_see_every_kind(empty_registry):
    # Each thread holds at the barrier, then they all ask at once (as a new web process's
    # threads do); every one must see the whole registry, none an empty or half one.
    barrier = threading.Barrier(16)

    def first_lookup(_: int) -> tuple[list[str], bool]:
        barrier.wait(10)
        return documents.names(), documents.get("potting_lot_labels") is not None

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(first_lookup, range(16)))
    expected = sorted(kind.name for kind in documents._builtin())
    assert all(set(expected) <= set(names) for names, _ in answers)
    assert all(found for _, found in answers)
