"""Random sequences of pipeline actions (reviews, revision requests, resubmissions, adjudication,
voiding, deciding again) keep the invariants: only allowed state changes, at most one decision,
pay exactly for the accepted work of decided comparisons and never for voided ones."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from marlin.accounts.models import Earning
from marlin.audit.models import AuditEvent
from marlin.review import pipeline
from marlin.review.actions import JudgmentClosed, do_submit_judgment
from marlin.review.models import Comparison, Decision, Judgment, Review
from tests.review.factories import agree_all, make_comparison, make_project, submitted_judgment

ALLOWED = {
    ("awaiting_judgments", "in_review"),
    ("in_review", "agreed"),
    ("in_review", "disputed"),
    ("agreed", "decided"),
    ("disputed", "decided"),
    ("disputed", "in_review"),
    ("awaiting_judgments", "voided"),
    ("in_review", "voided"),
    ("agreed", "voided"),
    ("disputed", "voided"),
}
RATINGS = {"correctness": -1, "security": None, "reliability": 0, "maintainability": 0}

VERDICTS = ["agree", "agree", "agree", "disagree", "revision"]
OVERALLS = [-2, 0, 2]


def as_action(raw: tuple[int, int, int, int]) -> tuple:
    """Mostly reviews, sometimes the rest, rarely a void (a void ends everything)."""
    roll, who, which, pick = raw
    if roll < 60:
        return ("review", who, which, VERDICTS[pick])
    if roll < 75:
        return ("resubmit", which)
    if roll < 88:
        return ("adjudicate", OVERALLS[pick % 3])
    if roll < 96:
        return ("decide",)
    return ("void",)


actions = st.lists(
    st.tuples(st.integers(0, 99), st.integers(0, 2), st.integers(0, 1), st.integers(0, 4)).map(
        as_action
    ),
    max_size=16,
)


class Rollback(Exception):
    pass


def check_invariants(comparison: Comparison) -> None:
    comparison.refresh_from_db()
    events = AuditEvent.objects.filter(
        object_type="review.comparison", object_id=str(comparison.pk)
    ).order_by("sequence")
    for change in events:
        if "state" in change.old_values:
            assert (change.old_values["state"], change.new_values["state"]) in ALLOWED, change
    judgments = list(Judgment.objects.filter(comparison=comparison))
    project = comparison.project
    for judgment in judgments:
        assert (
            judgment.reviews.filter(superseded_at__isnull=True).count()
            <= project.reviewers_per_judgment
        )
    earnings = list(Earning.objects.all())
    if comparison.state == "decided":
        decision = Decision.objects.get(comparison=comparison)
        assert {j.status for j in judgments} <= {"accepted", "rejected"}
        accepted = {str(j.pk) for j in judgments if j.status == "accepted"}
        assert {e.source_id for e in earnings if e.kind == "judgment"} == accepted
        assert sorted(e.source_id for e in earnings if e.kind == "review") == sorted(
            str(pk)
            for pk in Review.objects.filter(judgment__comparison=comparison).values_list(
                "pk", flat=True
            )
        )
        assert len([e for e in earnings if e.kind == "adjudication"]) == (
            decision.source == "adjudication"
        )
        assert events.filter(verb__in=["comparison.decided", "comparison.adjudicated"]).count() == 1
    else:
        assert not earnings and not Decision.objects.filter(comparison=comparison).exists()
    if comparison.state == "voided":
        assert {j.status for j in judgments} == {"voided"}


@pytest.fixture
def people(make_user) -> dict:
    """Created once for all examples (each example rolls back its own rows)."""
    roles = {
        "alice": "annotator",
        "anna": "annotator",
        "bob": "reviewer",
        "brian": "reviewer",
        "rhea": "reviewer",
        "carol": "adjudicator",
    }
    return {name: make_user(name, role) for name, role in roles.items()}


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(
    steps=[("review", 0, 0, "agree"), ("review", 1, 1, "agree")],
    second_overall=-1,
    reviewers_per_judgment=1,
)
@example(
    steps=[("review", 0, 0, "agree"), ("review", 1, 1, "disagree"), ("adjudicate", 2), ("decide",)],
    second_overall=-1,
    reviewers_per_judgment=1,
)
@given(
    steps=actions,
    second_overall=st.sampled_from([-2, -1, 1]),
    reviewers_per_judgment=st.sampled_from([1, 2]),
)
def test_random_action_sequences_keep_the_invariants(
    people, steps, second_overall, reviewers_per_judgment
) -> None:
    users = people
    reviewers = [users["bob"], users["brian"], users["rhea"]]
    try:
        with transaction.atomic():
            comparison = make_comparison(
                project=make_project(reviewers_per_judgment=reviewers_per_judgment)
            )
            judgments = [
                submitted_judgment(comparison, users["alice"], -2),
                submitted_judgment(comparison, users["anna"], second_overall),
            ]
            for step in steps:
                try:
                    with transaction.atomic():
                        if step[0] == "review":
                            _, who, which, verdict = step
                            pipeline.do_review(
                                reviewers[who],
                                judgments[which],
                                verdict=verdict,
                                reason="because",
                                per_criterion=agree_all(comparison),
                            )
                        elif step[0] == "resubmit":
                            judgment = Judgment.objects.get(pk=judgments[step[1]].pk)
                            do_submit_judgment(judgment.annotator, judgment)
                        elif step[0] == "adjudicate":
                            pipeline.do_adjudicate(
                                users["carol"],
                                comparison,
                                overall=step[1],
                                ratings=RATINGS,
                                rationale="The adjudicator's reasons.",
                            )
                        elif step[0] == "decide":
                            pipeline.do_decide_from_agreement(users["carol"], comparison)
                        else:
                            pipeline.do_void(users["carol"], comparison, reason="broken candidate")
                except (
                    pipeline.IllegalTransition,
                    PermissionDenied,
                    ValidationError,
                    JudgmentClosed,
                ):
                    pass
                check_invariants(comparison)
            event(f"ended {comparison.state}")
            raise Rollback
    except Rollback:
        pass
