"""Check jobs run for real: the demo repository mirrored into the test's data directory, the
bwrap sandbox, and the tools venv shared between tests (built once per machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.scenario import link_shared_tools


@pytest.fixture(autouse=True)
def _tools(_data_dir: Path) -> None:
    link_shared_tools(_data_dir)


@pytest.fixture
def immediate_jobs(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
