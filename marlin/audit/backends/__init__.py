"""Database backends that seal a transaction's audit events as the last thing before it
commits: Django's own PostgreSQL and SQLite backends plus `SealsAuditEvents`. Django has
`on_commit` (after) but no hook before a commit, hence the subclass (docs/decisions/0016).

Django loads a backend while it builds the models' classes, so this package cannot import the
audit models: `record()` hands over the sealing function with the events (marlin.audit.chain).
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db import Error
from django.db.backends.base.base import BaseDatabaseWrapper


class Sealer(Protocol):
    def __call__(
        self, connection: BaseDatabaseWrapper, pending: list[Any], *, committing: bool
    ) -> None: ...


class Pending:
    """What the open transaction recorded and has not sealed yet, with the savepoints that were
    active at the time, so a savepoint rolled back drops its own items (as with `on_commit`)."""

    def __init__(self) -> None:
        self.items: list[tuple[frozenset[str | None], Any]] = []
        self.sealer: Sealer | None = None

    def add(
        self,
        connection: BaseDatabaseWrapper,
        item: Any,
        sealer: Sealer,
    ) -> None:
        self.items.append((frozenset(connection.savepoint_ids), item))
        self.sealer = sealer

    def seal(self, connection: BaseDatabaseWrapper, *, committing: bool) -> None:
        """Hand the items to the sealer; `committing` when the commit follows at once (the
        sealer may then commit itself)."""
        items, self.items = [item for _, item in self.items], []
        if items and self.sealer is not None:
            self.sealer(connection, items, committing=committing)

    def drop_savepoint(self, sid: str) -> None:
        self.items = [(sids, item) for sids, item in self.items if sid not in sids]

    def clear(self) -> None:
        self.items = []


def in_own_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Whether an atomic block of the application's own is open. Test cases wrap each test in
    atomic blocks that never commit; what is recorded under those alone is sealed at once."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


class SealsAuditEvents(BaseDatabaseWrapper):
    """Keeps the audit events recorded in the open transaction (`audit_pending`) and seals them
    right before the commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audit_pending = Pending()

    def commit(self) -> None:
        if self.audit_pending.items:
            try:
                self.audit_pending.seal(self, committing=True)
            except BaseException:
                # Nothing of the transaction may commit without its events.
                self.audit_pending.clear()
                try:
                    self.rollback()
                except Error:
                    self.close()  # as Django does when a rollback fails: drop the connection
                raise
        super().commit()

    def savepoint_commit(self, sid: str) -> None:
        # A test case's atomic blocks never commit: releasing the savepoint of the outermost
        # block of the application's own is where the events of the code under test are sealed.
        if self.audit_pending.items and not in_own_transaction(self):
            self.audit_pending.seal(self, committing=False)
        super().savepoint_commit(sid)

    def savepoint_rollback(self, sid: str) -> None:
        super().savepoint_rollback(sid)
        self.audit_pending.drop_savepoint(sid)

    def rollback(self) -> None:
        self.audit_pending.clear()
        super().rollback()

    def close(self) -> None:
        self.audit_pending.clear()
        super().close()
