"""Blinding: every page, partial and JSON answer an annotator (or reviewer) can reach for a
comparison is searched for the agents' names and every agent, run, turn and candidate id.

The agents have distinctive names and every row has a large distinctive id, so a leak cannot
hide behind a common word or a small number; and each response is checked to carry real
content, so the search cannot pass on empty pages."""

from __future__ import annotations

import json
import re

import pytest

from marlin.agents.models import Agent, Candidate, Run, TrajectoryStep, Turn
from marlin.review import queue
from marlin.review.blinding import identity_strings, revealed_agents
from marlin.review.compare import side_files
from marlin.review.comparisons import turn_finished
from marlin.review.models import Comparison
from tests.review.workspace_factories import add_turn, candidate_files, demo_patch, make_comparison

NAMES = ("SecretAgentZephyr", "SecretAgentQuokka")
PK_BASE = 7_340_000

STEPS = {
    name: [
        {
            "text": f"Hello, I am {name}. Reading the money module.",
            "tool_calls": [
                {
                    "id": f"call_{PK_BASE}",
                    "name": "view_file",
                    "arguments": {"path": "ledgerlite/money.py"},
                }
            ],
            "tool_outputs": ["def parse_amount(text: str) -> int:"],
            "raw_message": {"model": f"{name.lower()}-coder-7b", "id": f"chatcmpl-{PK_BASE}"},
        }
    ]
    for name in NAMES
}


@pytest.fixture
def comparison(erin, dave) -> Comparison:
    comparison = make_comparison(erin, dave, names=NAMES, pk_base=PK_BASE, steps=STEPS, overlap=1)
    for run in (comparison.run_a, comparison.run_b):
        name = run.agent.name
        # An identity fingerprint in the patch and in a step: experts get the scrubbed copies.
        files = candidate_files("good") | {"NOTES.md": f"Written by {name}\n"}
        scrubbed = candidate_files("good") | {"NOTES.md": "Written by [an agent]\n"}
        Candidate.objects.filter(turn__run=run, turn__number=1).update(
            patch=demo_patch(files),
            scrubbed_patch=demo_patch(scrubbed),
            fingerprints=[{"kind": "signature", "match": name, "line": 1}],
        )
        # A follow-up turn, so per-turn and incremental views are searched too.
        offset = 0 if name == NAMES[0] else 1000
        turn = add_turn(
            run,
            2,
            demo_patch(scrubbed | {"CHANGES.md": "More.\n"}),
            prompt="Add CHANGES.md",
            pk=PK_BASE + offset + 300,
            steps=STEPS[name],
        )
        TrajectoryStep.objects.filter(turn__run=run).update(
            scrubbed_content={
                "text": "Hello, I am [an agent]. Reading the money module.",
                "tool_calls": STEPS[name][0]["tool_calls"],
                "tool_outputs": STEPS[name][0]["tool_outputs"],
            },
        )
    assert turn_finished(turn).turn_count == 2
    comparison.refresh_from_db()
    return comparison


def _secrets(comparison: Comparison) -> list[str]:
    values = set(NAMES) | {name.lower() for name in NAMES} | set(identity_strings(comparison))
    for model in (Agent, Run, Turn, Candidate):
        ids = [str(pk) for pk in model.objects.values_list("pk", flat=True)]
        assert all(int(i) >= PK_BASE for i in ids), f"{model.__name__} ids must be distinctive"
        values.update(ids)
    values.add(f"call_{PK_BASE}")
    return sorted(values)


def _assert_blind(label: str, response, secrets: list[str]) -> str:
    body = response.content.decode()
    where = body + " " + response.get("Location", "")
    for secret in secrets:
        assert not re.search(re.escape(secret), where, re.IGNORECASE), f"{label} reveals {secret!r}"
    return body


def test_nothing_an_annotator_can_reach_names_an_agent_or_an_id(
    alice, make_user, client_for, comparison
):
    secrets = _secrets(comparison)
    assert queue.next_comparison(alice) == comparison
    client = client_for(alice)
    base = f"/compare/{comparison.public_id}/"
    seen: dict[str, str] = {}

    def get(label: str, url: str, status: int = 200) -> str:
        response = client.get(url)
        assert response.status_code == status, (label, response.status_code)
        seen[label] = _assert_blind(label, response, secrets)
        return seen[label]

    page = get("page", base)
    assert "Written by [an agent]" in page or "an agent" in page
    get("queue", "/compare/")
    for turn in (1, 2):
        for view in ("cumulative", "incremental"):
            for mode in ("split", "unified"):
                get(f"page t{turn} {view} {mode}", f"{base}?turn={turn}&view={view}&mode={mode}")
        for side in ("A", "B"):
            traj = get(f"trajectory {side} t{turn}", f"{base}trajectory/{side}/?turn={turn}")
            assert "Reading the money module" in traj and "[an agent]" in traj
            for mode in ("split", "unified"):
                assert "diff-file" in get(
                    f"side {side} t{turn} {mode}", f"{base}diff/{side}/?turn={turn}&mode={mode}"
                )
            panel = get(f"side panel {side} t{turn}", f"{base}diff/{side}/?turn={turn}&panel=1")
            assert "tree-link" in panel
            for index in range(4):
                url = f"{base}file/{side}/{index}/?turn={turn}&force=1"
                response = client.get(url)
                if response.status_code == 200:
                    seen[f"file {side}{index} t{turn}"] = _assert_blind(url, response, secrets)
                else:
                    _assert_blind(url, response, secrets)
        for index in range(4):  # the A | B view's files, one by one
            url = f"{base}pair/{index}/?turn={turn}&force=1"
            response = client.get(url)
            _assert_blind(url, response, secrets)
            if response.status_code == 200:
                seen[f"pair {index} t{turn}"] = response.content.decode()
    assert any(label.startswith("pair ") and "diff-ab" in html for label, html in seen.items())
    for side in ("A", "B"):
        index = next(
            f.index for f in side_files(comparison, side, 1) if f.path == "ledgerlite/money.py"
        )
        assert "<tr" in get(
            f"context {side}", f"{base}context/{side}/{index}/?turn=1&from=1&to=5&new_from=1"
        )
    assert "Turn 2" in get("status", f"{base}status/")

    saved = client.post(
        f"{base}draft/", {"draft_revision": "0", "rating-correctness": "-1", "rationale": "draft"}
    )
    assert saved.status_code == 200
    _assert_blind("draft save", saved, secrets)
    stale = client.post(f"{base}draft/", {"draft_revision": "0", "rationale": "other tab"})
    assert stale.status_code == 409 and json.loads(stale.content)["draft"]
    _assert_blind("stale draft", stale, secrets)
    _assert_blind("draft json", client.get(f"{base}draft/"), secrets)
    refused = client.post(
        f"{base}submit/",
        {"draft_revision": "1", "overall": "-1", "rationale": "short"},
        follow=True,
    )
    assert refused.redirect_chain == [(base, 302)] and "Not submitted" in refused.content.decode()
    _assert_blind("refused submit", refused, secrets)
    followed = client.post(f"{base}follow-up/", {"prompt": "again"}, follow=True)
    for url, _ in followed.redirect_chain:
        assert not any(s.lower() in url.lower() for s in secrets)
    _assert_blind("follow-up", followed, secrets)

    # Another annotator and a reviewer see no more.
    anna = client_for(make_user("anna", "annotator")).get(base)
    assert anna.status_code == 403
    _assert_blind("refusal", anna, secrets)
    bob_page = client_for(make_user("bob2", "reviewer")).get(base)
    assert "accounting notation" in _assert_blind("reviewer page", bob_page, secrets)
    assert len(seen) >= 39  # every view above was really fetched and searched


def test_identities_are_revealed_only_after_the_decision_and_only_to_those_allowed(
    erin, alice, comparison
):
    from marlin.review.models import ComparisonState

    assert revealed_agents(erin, comparison) is None  # not even admins before the decision
    Comparison.objects.filter(pk=comparison.pk).update(state=ComparisonState.DECIDED)
    comparison.refresh_from_db()
    revealed = revealed_agents(erin, comparison)
    assert set(revealed.values()) == {f"{name} 1" for name in NAMES}
    assert revealed["A"].startswith(comparison.run_a.agent.name)
    assert revealed_agents(alice, comparison) is None  # the project keeps experts blind
    comparison.project.reveal_agents_to_experts_after_decision = True
    comparison.project.save()
    assert revealed_agents(alice, comparison) is None  # she did not work on it
