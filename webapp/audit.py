"""The audit log (`/admin/audit`): who did what, when, to which scope — every admin action,
written in the transaction of the action itself where there is one."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from webapp.db import write_txn
from webapp.models import AuditEntry, User


def record(
    session: Session | None,
    user: User | None,
    action: str,
    scope: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    """Write one entry in `session`'s transaction, or in a transaction of its own."""
    entry = AuditEntry(
        user_id=user.id if user is not None else None,
        action=action,
        scope=scope or {},
        result=result or {},
    )
    if session is not None:
        session.add(entry)
        return
    with write_txn() as own:
        own.add(entry)
