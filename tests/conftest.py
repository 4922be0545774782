"""Shared fixtures. Actors follow the house style: alice annotates, bob reviews, carol adjudicates,
dave authors tasks, erin administers, mallory is an outsider with no role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ARTIFACTS_DIR = Path(
    os.environ.get("MARLIN_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path: Path) -> Path:
    """Each test gets its own data directory (mirrors, workspaces, exports)."""
    path = tmp_path / "data"
    path.mkdir()
    settings.DATA_DIR = path
    # The real hasher is deliberately slow; tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return path


class TableResolver:
    """Names resolve from this table, so no test sends a DNS query: `localhost` to loopback,
    names a test maps with `resolver.names[...] = [...]` to those (an empty list: no such
    name), any other to a public address that no test connects to."""

    PUBLIC = "140.82.112.3"

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {"localhost": ["127.0.0.1", "::1"]}
        self.asked: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        addresses = self.names.get(host, [self.PUBLIC])
        if not addresses:
            raise OSError(f"{host}: name or service not known")
        return list(addresses)


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> TableResolver:
    """The catalog's outbound policy resolves repository hosts through
    `marlin.catalog.validation.resolve_host`; every test gets the table above instead."""
    from marlin.catalog import validation

    table = TableResolver()
    monkeypatch.setattr(validation, "resolve_host", table)
    return table


@pytest.fixture
def make_user(db):
    from marlin.accounts.models import RoleGrant, User

    def make(username: str, *roles: str, **fields) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, **fields)
        for role in roles:
            RoleGrant.objects.create(user=user, role=role)
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice", "annotator")


@pytest.fixture
def bob(make_user):
    return make_user("bob", "reviewer")


@pytest.fixture
def carol(make_user):
    return make_user("carol", "adjudicator")


@pytest.fixture
def dave(make_user):
    return make_user("dave", "author")


@pytest.fixture
def erin(make_user):
    return make_user("erin", "admin")


@pytest.fixture
def mallory(make_user):
    return make_user("mallory")


@pytest.fixture
def client_for(client):
    """Log a user in on the Django test client: client_for(alice)."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_setup"}


def pytest_collection_modifyitems(config, items):
    """With MARLIN_TEST_DB_ONLY=1 (the PostgreSQL pass of `make test`), keep only the tests that
    touch the database: the plain-Python ones already ran in the SQLite pass."""
    if os.environ.get("MARLIN_TEST_DB_ONLY") != "1":
        return
    keep, drop = [], []
    for item in items:
        uses_db = item.get_closest_marker("django_db") is not None or bool(
            DB_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        is_browser = item.get_closest_marker("e2e") is not None or "/e2e/" in str(item.fspath)
        (keep if uses_db and not is_browser else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
