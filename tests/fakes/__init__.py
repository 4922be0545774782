"""Fakes that are real enough to test against: servers over real HTTP, not mocks.

The scripted OpenAI/Anthropic-compatible model server is part of the product
(``marlin.devtools.model_server``: `marlin demo` runs it); ``model_server_factory`` is a pytest
fixture that starts such servers for a test. Import it into a conftest to use it::

    from tests.fakes import model_server_factory  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest

from marlin.devtools.model_server import FakeModelServer, ScriptItem


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
