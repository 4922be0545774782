"""Fakes that are real enough to test against: servers over real HTTP, not mocks.

``model_server_factory`` is a pytest fixture; import it into a conftest to use it::

    from tests.fakes import model_server_factory  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest

from tests.fakes.model_server import (
    Call,
    Fail,
    FakeModelServer,
    Hang,
    RecordedRequest,
    Reply,
    ScriptItem,
)

__all__ = [
    "Call",
    "Fail",
    "FakeModelServer",
    "Hang",
    "RecordedRequest",
    "Reply",
    "model_server_factory",
]


@pytest.fixture
def model_server_factory() -> Iterator[Callable[[Iterable[ScriptItem]], FakeModelServer]]:
    """Start fake model servers from scripts; all are stopped when the test ends."""
    started: list[FakeModelServer] = []

    def make(script: Iterable[ScriptItem]) -> FakeModelServer:
        server = FakeModelServer(script).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
