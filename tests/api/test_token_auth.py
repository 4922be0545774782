"""A token's last use is written at most once a minute: a client's GETs stay reads."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marlin.accounts.models import ApiToken


def _token_writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "apitoken" in q["sql"]]


def test_last_used_at_is_written_at_most_once_a_minute(client, alice):
    token, raw = ApiToken.issue(alice, "script")
    headers = {"Authorization": f"Bearer {raw}"}
    with CaptureQueriesContext(connection) as first:
        assert client.get("/api/comparisons", headers=headers).status_code == 200
    assert len(_token_writes(first)) == 1
    token.refresh_from_db()
    used = token.last_used_at
    assert used is not None and timezone.now() - used < timedelta(seconds=30)

    for _ in range(3):
        with CaptureQueriesContext(connection) as again:
            assert client.get("/api/comparisons", headers=headers).status_code == 200
        assert _token_writes(again) == []
    token.refresh_from_db()
    assert token.last_used_at == used

    # A minute later the next request records the use again.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=used - timedelta(seconds=61))
    with CaptureQueriesContext(connection) as later:
        assert client.get("/api/comparisons", headers=headers).status_code == 200
    assert len(_token_writes(later)) == 1
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at > used
