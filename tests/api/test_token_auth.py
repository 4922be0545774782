"""Token auth: a token's last use is written at most once a minute (a client's GETs stay
reads), and the roles it reads along with the user are the ones held at that request."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marlin.accounts.actions import do_grant_role, do_revoke_role, do_set_user_active
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


def test_roles_read_with_the_token_follow_a_grant_or_revocation_on_the_next_request(
    client, alice, make_user
):
    # The token's query reads the roles too (no query of their own), fresh on every request.
    admin = make_user("ada", "admin")
    _, raw = ApiToken.issue(alice, "script")
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/decisions", headers=headers).status_code == 403
    do_grant_role(admin, alice, "adjudicator", reason="joins the adjudicators")
    assert client.get("/api/decisions", headers=headers).status_code == 200
    do_revoke_role(admin, alice, "annotator", reason="no longer annotates")
    refused = client.post("/api/comparisons/next", headers=headers)
    assert refused.status_code == 403 and "annotator" in refused.json()["detail"]


def test_a_superuser_token_is_an_admin_without_a_grant(client, make_user):
    root = make_user("root", is_superuser=True)
    _, raw = ApiToken.issue(root, "script")
    shown = client.get("/api/decisions", headers={"Authorization": f"Bearer {raw}"})
    assert shown.status_code == 200


def test_a_deactivated_users_token_is_refused(client, alice, make_user):
    _, raw = ApiToken.issue(alice, "script")
    do_set_user_active(make_user("ada", "admin"), alice, False, reason="left")
    refused = client.get("/api/comparisons", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401
