"""The lease heartbeat (plain Python): it renews while the block runs, and a beat that fails
(the database dropped the connection) is followed by the caller's clean-up, so the next beat
can open a new connection instead of failing until the lease is lost."""

from __future__ import annotations

import threading
import time
from typing import Any

from marlin.leases import heartbeat


class FlakyRows:
    """Rows whose first renewal fails the way a dropped connection does, until it is closed."""

    def __init__(self) -> None:
        self.broken = True
        self.renewals: list[Any] = []
        self.closed = 0
        self.lock = threading.Lock()

    def update(self, **fields: Any) -> int:
        with self.lock:
            if self.broken:
                raise ConnectionError("server closed the connection unexpectedly")
            self.renewals.append(fields["lease_expires_at"])
            return 1

    def close(self) -> None:
        with self.lock:
            self.closed += 1
            self.broken = False


def test_a_failed_beat_closes_the_connection_and_the_next_beat_renews() -> None:
    rows = FlakyRows()
    with heartbeat(rows, lease_seconds=0.6, on_thread_exit=rows.close):
        deadline = time.monotonic() + 5
        while len(rows.renewals) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(rows.renewals) >= 2
    assert rows.closed >= 2  # after the failed beat, and when the thread stopped
