"""schemathesis against the served OpenAPI schema, through the real WSGI app, with real tokens.

Every operation gets a modest number of generated requests (positive and negative) as an admin,
who can reach every endpoint; the check is that nothing answers with a server error and that
documented responses match their schemas.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from marlin.accounts.models import ApiToken

pytestmark = pytest.mark.slow


@pytest.fixture
def keep_test_connection():
    """What Django's test client does: a WSGI request must not close the connection that holds
    the test's transaction (on PostgreSQL, closing it would end the test's transaction)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_headers(world, erin):
    _, raw = ApiToken.issue(erin, "schemathesis")
    return {"Authorization": f"Bearer {raw}"}


# Loaded at collection: serving the schema needs no database. (schemathesis' lazy
# `from_fixture` loader does not work with pytest 9, whose nodes have no `_nodeid`.)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_never_answers_with_a_server_error(
    case, world, admin_headers, keep_test_connection
):
    if case.path == "/api/leaderboards/{project_id}":
        # Bootstrap rounds are bounded (<= 10,000) but still cost time; keep the fuzz run fast.
        case.query = {**(case.query or {}), "rounds": 5}
    case.call_and_validate(
        headers=admin_headers, checks=[not_a_server_error, response_schema_conformance]
    )
