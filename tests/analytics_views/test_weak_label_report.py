"""The weak-label report: votes from check results and patches, scored against decisions."""

from __future__ import annotations

import numpy as np
import pytest

from marlin.analytics import weak_labels
from marlin.analytics.weak_label_report import project_votes
from marlin.checks.models import CheckResult, CheckStatus
from tests.analytics_views.factories import (
    decide,
    make_agent,
    make_comparison,
    make_project,
    make_repository,
    make_task,
)

HARNESS_PATCH = (
    "diff --git a/conftest.py b/conftest.py\n--- a/conftest.py\n+++ b/conftest.py\n"
    "@@ -1 +1 @@\n-a\n+b\n"
)


def _check(run, index: int, kind: str, passed: bool, findings: int = 0) -> None:
    CheckResult.objects.create(
        candidate=run.turns.get().candidate,
        check_index=index,
        name=kind,
        kind=kind,
        status=CheckStatus.PASSED if passed else CheckStatus.FAILED,
        findings=[{"rule": "S101", "line": n} for n in range(findings)],
    )


@pytest.fixture
def project(db):
    """40 decided comparisons; the side the hidden tests favour wins 85% of the time."""
    project = make_project("Weak")
    repository = make_repository()
    agents = [make_agent("alpha"), make_agent("beta")]
    rng = np.random.default_rng(3)
    for n in range(40):
        task = make_task(project, repository, n=n + 1)
        comparison = make_comparison(project, task, agents[n % 2], agents[1 - n % 2])
        a_resolves = bool(n % 3)
        _check(comparison.run_a, 1, "hidden-tests", a_resolves)
        _check(comparison.run_b, 1, "hidden-tests", not a_resolves)
        a_wins = a_resolves if rng.random() < 0.85 else not a_resolves
        decide(comparison, -2 if a_wins else 2)
    # One undecided comparison where side B adds lint findings and side A edits the harness.
    task = make_task(project, repository, n=99)
    open_one = make_comparison(project, task, agents[0], agents[1], patch=HARNESS_PATCH)
    _check(open_one.run_a, 1, "lint", True, findings=0)
    _check(open_one.run_b, 1, "lint", True, findings=2)
    return project


def test_votes_come_from_tests_findings_and_harness_changes(project) -> None:
    votes, labels = project_votes(project)
    assert votes.shape == (41, 3) and labels.shape == (41,)
    assert (labels == weak_labels.UNKNOWN).sum() == 1
    decided = labels != weak_labels.UNKNOWN
    assert np.all(votes[decided, 0] != weak_labels.ABSTAIN)
    assert np.all(votes[decided, 1:] == weak_labels.ABSTAIN)
    open_row = votes[~decided][0]
    # Lint: only B has findings, a vote for A; harness: A changed it, a vote for B.
    assert open_row.tolist() == [
        weak_labels.ABSTAIN,
        weak_labels.VOTE_FIRST,
        weak_labels.VOTE_SECOND,
    ]


def test_reviewers_read_the_report_and_annotators_cannot(project, client_for, make_user) -> None:
    reviewer = make_user("rita", "reviewer")
    response = client_for(reviewer).get(f"/leaderboard/{project.pk}/weak-labels/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "41 comparisons with candidates, 40 decided." in html
    coverage = html.split("Coverage (a check voted)</dt><dd>")[1].split("<")[0]
    accuracy = html.split("Accuracy where covered</dt><dd>")[1].split("<")[0]
    assert coverage == "100%"
    assert 70 <= int(accuracy.rstrip("%")) <= 95
    assert 'id="calibration"' in html
    annotator = make_user("anne", "annotator")
    assert client_for(annotator).get(f"/leaderboard/{project.pk}/weak-labels/").status_code == 403


def test_too_few_decisions_say_so(db, client_for, make_user) -> None:
    project = make_project("Empty")
    reviewer = make_user("rita", "reviewer")
    html = client_for(reviewer).get(f"/leaderboard/{project.pk}/weak-labels/").content.decode()
    assert "No report yet: need at least 5 decided comparisons; got 0." in html
