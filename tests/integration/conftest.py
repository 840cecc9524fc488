"""Integration tests run against real processes (tests/services.py); failures show their logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import app_ctx, attach_logs, parametrize_databases, stack

__all__ = ["app_ctx", "stack"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_databases(metafunc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    attach_logs(item, outcome.get_result())
