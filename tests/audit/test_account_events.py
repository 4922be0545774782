"""The account pages change state only through audited actions: opening the profile page writes
nothing, the first save of a profile is an audit event, tokens are issued and revoked with one
event each and the raw token never reaches the log."""

from __future__ import annotations

from marlin.accounts.models import ApiToken, ExpertProfile
from marlin.audit.models import AuditEvent

PROFILE = "/account/profile/"


def _events():
    return list(AuditEvent.objects.order_by("sequence"))


def test_opening_the_profile_page_writes_nothing(client_for, mallory):
    # mallory was made without a profile (as createsuperuser or the admin would).
    assert not ExpertProfile.objects.filter(user=mallory).exists()
    before = _events()
    response = client_for(mallory).get(PROFILE)
    assert response.status_code == 200
    assert not ExpertProfile.objects.filter(user=mallory).exists()
    assert _events() == before


def test_the_first_profile_save_creates_it_with_one_audit_event(client_for, mallory):
    response = client_for(mallory).post(
        PROFILE,
        {"form": "profile", "skills": "security", "languages": "Rust", "years_experience": 4},
    )
    assert response.status_code == 302
    profile = ExpertProfile.objects.get(user=mallory)
    assert profile.languages == ["rust"] and profile.years_experience == 4
    [event] = AuditEvent.objects.filter(object_type="accounts.expertprofile")
    assert (event.verb, event.actor, event.object_id) == (
        "profile.create",
        mallory,
        str(profile.pk),
    )
    assert event.new_values["languages"] == ["rust"]


def test_tokens_are_issued_and_revoked_with_one_event_each_never_the_token(
    client_for, alice, mallory
):
    client = client_for(alice)
    response = client.post(PROFILE, {"form": "token", "name": "laptop"})
    raw = response.context["new_token"]
    token = ApiToken.objects.get(user=alice)
    # Another user's token id answers 404 and changes nothing.
    assert client_for(mallory).post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    client_for(alice).post(f"/account/tokens/{token.pk}/revoke/")

    events = [e for e in _events() if e.object_type == "accounts.apitoken"]
    assert [(e.verb, e.actor) for e in events] == [("token.issue", alice), ("token.revoke", alice)]
    assert raw not in str([(e.old_values, e.new_values, e.reason) for e in _events()])
    token.refresh_from_db()
    assert token.revoked_at is not None
