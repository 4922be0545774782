"""The JSON API over the real Django stack: tokens, roles, blinding, drafts."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from marlin.agents.models import Agent, Run
from marlin.review.models import Comparison, Judgment
from tests.api.conftest import AGENT_NAMES

# Keys that would carry an identity or an internal id; "agent" is allowed only as "Agent N".
ID_KEYS = {
    "agent_id",
    "run_id",
    "run_a",
    "run_b",
    "candidate_id",
    "turn_id",
    "run",
    "candidate",
    "agent_name",
}


def keys_and_values(data: Any) -> tuple[set[str], list[Any]]:
    keys: set[str] = set()
    values: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        else:
            values.append(node)

    walk(data)
    return keys, values


def test_requests_without_a_valid_token_get_a_json_401(client, world, token_for, alice):
    response = client.get("/api/comparisons")
    assert response.status_code == 401 and response.json() == {"detail": "Unauthorized"}
    assert (
        client.get("/api/comparisons", headers={"Authorization": "Bearer mrl_wrong"}).status_code
        == 401
    )
    headers = token_for(alice)
    assert client.get("/api/comparisons", headers=headers).status_code == 200
    alice.api_tokens.update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get("/api/comparisons", headers=headers).status_code == 401


def test_an_annotator_token_never_reads_agent_identities(client, world, token_for, alice):
    headers = token_for(alice)
    public_id = world["open"].public_id
    bodies = []
    listing = client.get("/api/comparisons", headers=headers)
    assert listing.status_code == 200
    assert [c["public_id"] for c in listing.json()["items"]] == [public_id]
    detail = client.get(f"/api/comparisons/{public_id}", headers=headers)
    assert detail.status_code == 200
    body = detail.json()
    assert [s["side"] for s in body["sides"]] == ["A", "B"] and body["agents"] is None
    assert body["sides"][0]["patch"] == world["open"].run_a.turns.get().candidate.patch
    board = client.get(f"/api/leaderboards/{world['project'].pk}?rounds=20", headers=headers)
    assert board.status_code == 200 and board.json()["ranking"][0]["agent"] == "Agent 1"
    bodies += [listing.json(), body, board.json()]
    for path in (
        "/api/agents",
        f"/api/agents/{world['agents'][0].pk}",
        f"/api/runs/{world['open'].run_a_id}",
        "/api/decisions",
        "/api/exports",
        "/api/tasks",
        "/api/repositories",
    ):
        refused = client.get(path, headers=headers)
        assert refused.status_code == 403, path
        assert "roles" in refused.json()["detail"]
        bodies.append(refused.json())
    assert (
        client.get(f"/api/leaderboards/{world['project'].pk}?agents=1", headers=headers).status_code
        == 403
    )
    text = json.dumps(bodies)
    for name in AGENT_NAMES:
        assert name not in text
    keys, _ = keys_and_values(bodies)
    assert not (keys & ID_KEYS)
    assert all(
        re.fullmatch(r"Agent \d", row["agent"])
        for row in board.json()["ranking"] + board.json()["style_controlled"]
    )
    assert (
        Agent.objects.count() == 3 and Run.objects.count() == 10
    )  # the data really holds identities


def test_other_experts_drafts_are_404(client, world, token_for, alice, bob):
    headers = token_for(alice)
    public_id = world["open"].public_id
    mine = client.get(f"/api/comparisons/{public_id}/judgment", headers=headers)
    assert mine.status_code == 404 and "no judgment" in mine.json()["detail"]
    assert (
        client.get(f"/api/judgments/{world['anna_draft'].pk}", headers=headers).status_code == 404
    )
    # Reviewers read submitted judgments, never drafts.
    reviewer = token_for(bob)
    assert (
        client.get(f"/api/judgments/{world['anna_draft'].pk}", headers=reviewer).status_code == 404
    )
    submitted = Judgment.objects.exclude(status="draft").first()
    seen = client.get(f"/api/judgments/{submitted.pk}", headers=reviewer)
    assert seen.status_code == 200 and seen.json()["rationale"] == submitted.rationale
    other = Comparison.objects.exclude(pk=world["open"].pk).first()
    hidden = client.get(f"/api/comparisons/{other.public_id}", headers=headers)
    assert hidden.status_code == 404
    assert client.get("/api/comparisons/no-such-id", headers=headers).json() == hidden.json()


def draft(revision: int, **fields: Any) -> dict[str, Any]:
    body = {
        "draft_revision": revision,
        "ratings": {"correctness": -2, "security": None, "reliability": -1, "maintainability": 0},
        "overall": -2,
        "rationale": "A handles the empty ledger; B raises KeyError.",
        "confidence": 4,
        "active_seconds": 300,
    }
    return body | fields


def test_an_annotator_saves_drafts_with_revisions_and_submits(client, world, token_for, alice):
    headers = token_for(alice)
    url = f"/api/comparisons/{world['open'].public_id}/judgment"
    first = client.put(
        url, draft(0, rationale="first"), content_type="application/json", headers=headers
    )
    assert first.status_code == 200 and first.json()["draft_revision"] == 1
    stale = client.put(url, draft(0), content_type="application/json", headers=headers)
    assert stale.status_code == 409 and "another tab" in stale.json()["detail"]
    bad = client.put(url, draft(1, overall=7), content_type="application/json", headers=headers)
    assert bad.status_code == 422 and "7-point scale" in bad.json()["detail"]
    saved = client.put(url, draft(1), content_type="application/json", headers=headers)
    assert saved.status_code == 200 and saved.json()["overall"] == -2
    submitted = client.post(url + "/submit", headers=headers)
    assert submitted.status_code == 200, submitted.json()
    assert submitted.json()["status"] == "submitted"
    again = client.post(url + "/submit", headers=headers)
    assert again.status_code == 409


def test_submitting_an_incomplete_draft_lists_what_is_missing(client, world, token_for, alice):
    headers = token_for(alice)
    url = f"/api/comparisons/{world['open'].public_id}/judgment"
    client.put(
        url, {"draft_revision": 0, "overall": 1}, content_type="application/json", headers=headers
    )
    response = client.post(url + "/submit", headers=headers)
    assert response.status_code == 422
    assert "ratings: Rate every criterion" in response.json()["detail"]


def test_admins_and_authors_see_agent_names(client, world, token_for, erin, dave):
    for user in (erin, dave):
        headers = token_for(user)
        body = client.get(f"/api/comparisons/{world['open'].public_id}", headers=headers).json()
        assert body["agents"] == {"A": "claude-code 1", "B": "codex-cli 1"}
        decisions = client.get("/api/decisions", headers=headers).json()
        assert decisions["count"] == 4 and decisions["items"][0]["agents"]["A"].endswith(" 1")
        board = client.get(
            f"/api/leaderboards/{world['project'].pk}?rounds=20", headers=headers
        ).json()
        assert {r["agent"] for r in board["ranking"]} == {f"{n} 1" for n in AGENT_NAMES}


def test_exports_through_the_api(
    client, world, token_for, erin, settings, django_capture_on_commit_callbacks
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    headers = token_for(erin)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/exports",
            {"project_id": world["project"].pk, "kind": "preferences"},
            content_type="application/json",
            headers=headers,
        )
    assert created.status_code == 202
    got = client.get(f"/api/exports/{created.json()['id']}", headers=headers).json()
    assert got["status"] == "done" and set(got["files"]) == {
        "preferences.jsonl",
        "preferences.openai.jsonl",
        "preferences.parquet",
    }
    assert got["manifest"]["counts"]["rows"] == 4
    bad = client.post(
        "/api/exports",
        {"project_id": world["project"].pk, "kind": "everything"},
        content_type="application/json",
        headers=headers,
    )
    assert bad.status_code == 422 and "kind must be one of" in bad.json()["detail"]


def test_the_browser_session_works_and_needs_csrf_for_writes(world, alice):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/comparisons").status_code == 200
    url = f"/api/comparisons/{world['open'].public_id}/judgment"
    refused = browser.put(url, draft(0), content_type="application/json")
    assert refused.status_code == 403


def test_the_schema_and_docs_are_served(client, db):
    schema = client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "Marlin API"
    assert "/api/comparisons/{public_id}/judgment" in schema["paths"]
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    assert client.get("/api/docs").status_code == 200


@pytest.mark.parametrize("path", ["/api/tasks", "/api/repositories", "/api/agents"])
def test_authors_list_catalog_tasks_and_agents(client, world, token_for, dave, path):
    response = client.get(path, headers=token_for(dave))
    assert response.status_code == 200 and response.json()["count"] >= 1


@pytest.mark.parametrize(
    "query",
    ["offset=99999999999999999999", "limit=5000", "offset=-1", "project_id=99999999999999999999"],
)
def test_out_of_range_numbers_are_a_422_not_a_server_error(client, world, token_for, dave, query):
    response = client.get(f"/api/tasks?{query}", headers=token_for(dave))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    "path",
    [
        "/api/tasks?q=a%00b",
        "/api/tasks?status=%00",
        "/api/repositories?language=py%00",
        "/api/comparisons?state=%00",
        "/api/leaderboards/1?task_kind=%00",
    ],
)
def test_a_nul_character_in_a_filter_is_a_422_not_a_server_error(
    client, world, token_for, dave, path
):
    # PostgreSQL refuses NUL in any string it is sent; the API must refuse it first.
    response = client.get(path, headers=token_for(dave))
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_a_nul_character_in_an_export_filter_is_a_422(client, world, token_for, erin):
    response = client.post(
        "/api/exports",
        {"project_id": world["project"].pk, "kind": "preferences", "task_kind": "x\u0000"},
        content_type="application/json",
        headers=token_for(erin),
    )
    assert response.status_code == 422, response.content
