from __future__ import annotations

import pytest

from marlin.accounts.models import ApiToken
from marlin.review.models import Claim, ComparisonState
from tests.analytics_views.factories import (
    judge,
    league,
    make_agent,
    make_comparison,
    make_project,
    make_repository,
    make_task,
)

AGENT_NAMES = ("claude-code", "codex-cli", "aider-chat")


@pytest.fixture
def token_for(db):
    def issue(user) -> dict[str, str]:
        _, raw = ApiToken.issue(user, "tests")
        return {"Authorization": f"Bearer {raw}"}

    return issue


@pytest.fixture
def world(db, alice, make_user, bob, dave):
    """A project with decided comparisons, one comparison alice holds, and anna's draft on it."""
    anna = make_user("anna", "annotator")
    project = make_project("Ledgerlite", min_rationale_chars=20)
    agents = [make_agent(n, "1") for n in AGENT_NAMES]
    league(
        project,
        agents,
        [(0, 1, -2), (1, 2, 1), (2, 0, 3), (0, 2, -1)],
        annotators=[anna],
        reviewer=bob,
    )
    task = make_task(project, make_repository("acme/other"), n=99, created_by=dave)
    open_comparison = make_comparison(project, task, agents[0], agents[1])
    open_comparison.state = ComparisonState.AWAITING_JUDGMENTS
    open_comparison.save()
    Claim.objects.create(comparison=open_comparison, annotator=alice)
    Claim.objects.create(comparison=open_comparison, annotator=anna)
    anna_draft = judge(open_comparison, anna, 2, status="draft")
    return {
        "project": project,
        "agents": agents,
        "open": open_comparison,
        "anna": anna,
        "anna_draft": anna_draft,
    }
