"""The review pipeline's transitions, run through the do_* actions on the ORM."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from marlin.accounts.models import Earning
from marlin.audit.models import AuditEvent
from marlin.review import pipeline
from marlin.review.models import ComparisonState, Decision, JudgmentStatus
from marlin.review.pay import NotPayable, pay_judgment, pay_review
from marlin.tasks.actions import do_revise_rubric, do_update_project
from marlin.tasks.rubric import DEFAULT_CRITERIA
from tests.review.factories import (
    adjudicating,
    agree_all,
    make_comparison,
    make_project,
    resubmitted_judgment,
    submitted_judgment,
)


@pytest.fixture
def anna(make_user):
    return make_user("anna", "annotator")


@pytest.fixture
def brian(make_user):
    return make_user("brian", "reviewer")


def verbs(comparison) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type="review.comparison", object_id=str(comparison.pk)
        ).values_list("verb", flat=True)
    )


def review(
    reviewer,
    judgment,
    verdict="agree",
    per_criterion=None,
    reason="Checked the diff; the ratings hold.",
):
    return pipeline.do_review(
        reviewer,
        judgment,
        verdict=verdict,
        reason=reason,
        per_criterion=per_criterion
        if per_criterion is not None
        else agree_all(judgment.comparison),
    )


def judged_and_reviewed(comparison, annotators, reviewers, overalls):
    """Submit every judgment first (review starts at the overlap), then review each."""
    judgments = [
        submitted_judgment(comparison, a, o) for a, o in zip(annotators, overalls, strict=True)
    ]
    for reviewer, judgment in zip(reviewers, judgments, strict=True):
        review(reviewer, judgment)
    return judgments


def paid(comparison=None) -> list[tuple[str, str, int]]:
    return sorted(Earning.objects.values_list("user__username", "kind", "amount_cents"))


def test_review_starts_when_the_overlap_is_reached(alice, anna) -> None:
    comparison = make_comparison()
    submitted_judgment(comparison, alice, -2)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.AWAITING_JUDGMENTS
    submitted_judgment(comparison, anna, -1)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.IN_REVIEW
    assert verbs(comparison) == [
        "comparison.claimed",
        "comparison.claimed",
        "comparison.start_review",
    ]


def test_agreeing_judgments_and_reviews_decide_the_comparison(alice, anna, bob, brian) -> None:
    comparison = make_comparison()
    first = submitted_judgment(
        comparison,
        alice,
        -2,
        {"correctness": -3, "security": None, "reliability": -1, "maintainability": 0},
    )
    second = submitted_judgment(
        comparison,
        anna,
        -1,
        {"correctness": -1, "security": None, "reliability": 0, "maintainability": 1},
    )
    review(bob, first)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.IN_REVIEW
    review(brian, second)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DECIDED
    decision = Decision.objects.get(comparison=comparison)
    assert decision.source == "agreement"
    assert decision.overall == -1
    assert decision.ratings == {
        "correctness": -2,
        "security": None,
        "reliability": 0,
        "maintainability": 0,
    }
    assert verbs(comparison) == [
        "comparison.claimed",
        "comparison.claimed",
        "comparison.start_review",
        "comparison.agreed",
        "comparison.decided",
    ]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (JudgmentStatus.ACCEPTED, JudgmentStatus.ACCEPTED)
    assert paid() == [
        ("alice", "judgment", 2500),
        ("anna", "judgment", 2500),
        ("bob", "review", 800),
        ("brian", "review", 800),
    ]


def test_opposite_preferences_go_to_adjudication_and_only_the_upheld_judgment_is_paid(
    alice, anna, bob, brian, carol
) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -2)
    second = submitted_judgment(comparison, anna, 1)
    review(bob, first)
    review(brian, second)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    dispute = AuditEvent.objects.get(verb="comparison.disputed", object_id=str(comparison.pk))
    assert "overall preferences point different ways (A vs B)" in dispute.reason
    ratings = {"correctness": -2, "security": None, "reliability": -1, "maintainability": 0}
    adjudicating(carol, comparison, 300)
    decision = pipeline.do_adjudicate(
        carol,
        comparison,
        overall=-2,
        ratings=ratings,
        rationale="A is correct on empty input; B crashes.",
    )
    assert (decision.source, decision.decided_by, decision.overall, decision.ratings) == (
        "adjudication",
        carol,
        -2,
        ratings,
    )
    assert decision.active_seconds == 300  # measured by the server from carol's heartbeats
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (JudgmentStatus.ACCEPTED, JudgmentStatus.REJECTED)
    assert paid() == [
        ("alice", "judgment", 2500),
        ("bob", "review", 800),
        ("brian", "review", 800),
        ("carol", "adjudication", 1500),
    ]
    with pytest.raises(NotPayable, match="only accepted judgments are paid"):
        pay_judgment(second)


def test_a_criterion_too_far_apart_is_disputed(alice, anna, bob, brian) -> None:
    comparison = make_comparison(project=make_project(agreement_max_step_difference=1))
    first = submitted_judgment(
        comparison,
        alice,
        -1,
        {"correctness": -3, "security": 0, "reliability": 0, "maintainability": 0},
    )
    second = submitted_judgment(
        comparison,
        anna,
        -1,
        {"correctness": -1, "security": 0, "reliability": 0, "maintainability": 0},
    )
    review(bob, first)
    review(brian, second)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    event = AuditEvent.objects.get(verb="comparison.disputed", object_id=str(comparison.pk))
    assert event.reason == "judgments 1 and 2: correctness is 2 steps apart (at most 1 allowed)"


def test_a_reviewer_who_disagrees_on_one_criterion_disputes_agreeing_judgments(
    alice, anna, bob, brian
) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -2)
    second = submitted_judgment(comparison, anna, -2)
    per_criterion = agree_all(comparison) | {
        "security": {"agree": False, "reason": "The eval() in A is a hole."}
    }
    review(bob, first, per_criterion=per_criterion)
    review(brian, second)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    assert Earning.objects.count() == 0


def test_it_refuses_reviewing_your_own_judgment(make_user, anna) -> None:
    both = make_user("rita", "annotator", "reviewer")
    comparison = make_comparison()
    own = submitted_judgment(comparison, both, -1)
    submitted_judgment(comparison, anna, -1)
    with pytest.raises(PermissionDenied, match="You cannot review your own judgment"):
        review(both, own)
    assert not own.reviews.exists()


def test_it_refuses_reviewing_a_comparison_you_judged(make_user, anna) -> None:
    both = make_user("rita", "annotator", "reviewer")
    comparison = make_comparison()
    submitted_judgment(comparison, both, -1)
    other = submitted_judgment(comparison, anna, -1)
    with pytest.raises(PermissionDenied, match="You judged this comparison yourself"):
        review(both, other)


def test_it_refuses_a_second_review_and_reviews_beyond_the_number_needed(
    alice, anna, bob, brian
) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -1)
    submitted_judgment(comparison, anna, 1)
    review(bob, first)
    with pytest.raises(pipeline.IllegalTransition, match="You already reviewed this judgment"):
        review(bob, first)
    with pytest.raises(pipeline.IllegalTransition, match="already has the 1 review"):
        review(brian, first)
    assert first.reviews.count() == 1


def test_it_refuses_reviews_before_every_judgment_is_in(alice, bob) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -1)
    with pytest.raises(pipeline.IllegalTransition, match="awaiting judgments, not in review"):
        review(bob, first)


def test_a_review_needs_a_reason_and_every_criterion(alice, anna, bob) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -1)
    submitted_judgment(comparison, anna, -1)
    with pytest.raises(ValidationError, match="A reason is required"):
        review(bob, first, reason="  ")
    with pytest.raises(ValidationError, match="missing: Security"):
        review(
            bob,
            first,
            per_criterion={k: v for k, v in agree_all(comparison).items() if k != "security"},
        )
    with pytest.raises(ValidationError, match="Say why you disagree on Correctness"):
        review(
            bob,
            first,
            per_criterion=agree_all(comparison) | {"correctness": {"agree": False, "reason": ""}},
        )
    assert not first.reviews.exists()


def test_it_refuses_adjudicating_without_the_role(alice, anna, bob, brian, mallory) -> None:
    comparison = make_comparison()
    judged_and_reviewed(comparison, (alice, anna), (bob, brian), (-1, 1))
    for outsider in (bob, alice, mallory):
        with pytest.raises(PermissionDenied, match="needs one of these roles: adjudicator"):
            pipeline.do_adjudicate(outsider, comparison, overall=-1, ratings={}, rationale="x" * 50)
    assert not Decision.objects.exists()


def test_an_adjudicator_who_judged_the_comparison_cannot_decide_it(
    make_user, anna, bob, brian
) -> None:
    judge = make_user("jude", "annotator", "adjudicator")
    comparison = make_comparison()
    judged_and_reviewed(comparison, (judge, anna), (bob, brian), (-1, 1))
    with pytest.raises(PermissionDenied, match="another adjudicator"):
        pipeline.do_adjudicate(judge, comparison, overall=-1, ratings={}, rationale="x" * 50)


def test_it_refuses_deciding_an_agreed_comparison_twice(alice, anna, bob, brian, carol) -> None:
    comparison = make_comparison()
    judged_and_reviewed(comparison, (alice, anna), (bob, brian), (-1, -1))
    with pytest.raises(pipeline.IllegalTransition, match="This comparison is already decided."):
        pipeline.do_decide_from_agreement(carol, comparison)
    with pytest.raises(pipeline.IllegalTransition, match="This comparison is already decided."):
        pipeline.do_adjudicate(carol, comparison, overall=1, ratings={}, rationale="x" * 50)
    assert Decision.objects.filter(comparison=comparison).count() == 1
    assert verbs(comparison).count("comparison.decided") == 1
    assert Earning.objects.count() == 4


def test_adjudication_needs_every_criterion_and_a_long_enough_rationale(
    alice, anna, bob, brian, carol
) -> None:
    comparison = make_comparison()
    judged_and_reviewed(comparison, (alice, anna), (bob, brian), (-1, 1))
    with pytest.raises(
        ValidationError, match="missing: Correctness, Security, Reliability, Maintainability"
    ):
        pipeline.do_adjudicate(carol, comparison, overall=-1, ratings={}, rationale="x" * 50)
    full = {"correctness": -1, "security": None, "reliability": 0, "maintainability": 0}
    with pytest.raises(ValidationError, match="too short: 5 of at least 20"):
        pipeline.do_adjudicate(carol, comparison, overall=-1, ratings=full, rationale="short")
    with pytest.raises(ValidationError, match="not on the 7-point scale"):
        pipeline.do_adjudicate(carol, comparison, overall=5, ratings=full, rationale="x" * 50)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED


def test_it_refuses_to_pay_a_voided_comparison(alice, anna, bob, carol) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -1)
    submitted_judgment(comparison, anna, 1)
    done = review(bob, first)
    pipeline.do_void(
        carol, comparison, reason="Candidate B never built; the task's setup is broken."
    )
    comparison.refresh_from_db()
    first.refresh_from_db()
    assert comparison.state == ComparisonState.VOIDED and first.status == JudgmentStatus.VOIDED
    with pytest.raises(NotPayable, match="voided work is never paid"):
        pay_judgment(first)
    with pytest.raises(NotPayable, match="voided work is never paid"):
        pay_review(done)
    assert Earning.objects.count() == 0
    with pytest.raises(
        pipeline.IllegalTransition, match="This comparison was voided: Candidate B never built"
    ):
        review(bob, first)
    with pytest.raises(pipeline.IllegalTransition, match="already voided"):
        pipeline.do_void(carol, comparison, reason="again")


def test_voiding_needs_a_reason_the_role_and_an_undecided_comparison(
    alice, anna, bob, brian, carol
) -> None:
    comparison = make_comparison()
    with pytest.raises(ValidationError, match="Say why"):
        pipeline.do_void(carol, comparison, reason=" ")
    with pytest.raises(PermissionDenied):
        pipeline.do_void(bob, comparison, reason="looks broken")
    judged_and_reviewed(comparison, (alice, anna), (bob, brian), (-1, -1))
    with pytest.raises(
        pipeline.IllegalTransition, match="already decided; a decided comparison cannot be voided"
    ):
        pipeline.do_void(carol, comparison, reason="too late")


def test_a_revision_request_sends_the_judgment_back_and_the_resubmission_is_reviewed_afresh(
    alice, anna, bob, brian
) -> None:
    comparison = make_comparison()
    first = submitted_judgment(comparison, alice, -1)
    second = submitted_judgment(comparison, anna, -1)
    agreed = review(brian, second)
    sent_back = review(
        bob, first, verdict="revision", reason="Your rationale does not mention the failing test."
    )
    first.refresh_from_db()
    assert first.status == JudgmentStatus.REVISION_REQUESTED
    assert list(pipeline.revision_requests(first)) == [sent_back]
    assert sent_back.superseded_at is not None
    agreed.refresh_from_db()
    assert agreed.superseded_at is None  # other judgments keep their reviews
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.IN_REVIEW
    first = resubmitted_judgment(
        first,
        rationale="Side A passes the hidden test test_total_skips_none; B fails it on empty input.",
    )
    assert first.status == JudgmentStatus.SUBMITTED
    review(bob, first)  # the same reviewer may review the new version
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DECIDED
    # Both of bob's reviews were work done: both are paid.
    assert paid() == [
        ("alice", "judgment", 2500),
        ("anna", "judgment", 2500),
        ("bob", "review", 800),
        ("bob", "review", 800),
        ("brian", "review", 800),
    ]


def test_rubric_change_sends_older_judgments_back_to_review(alice, anna, bob, brian, erin) -> None:
    project = make_project(rereview_on_rubric_change=True)
    disputed = make_comparison(project=project)
    old_first, _ = judged_and_reviewed(disputed, (alice, anna), (bob, brian), (-1, 2))
    decided = make_comparison(project=project)
    judged_and_reviewed(decided, (alice, anna), (bob, brian), (-1, -1))
    criteria = [dict(c) for c in DEFAULT_CRITERIA]
    criteria[0]["guidance"] += " Run the hidden tests before rating."
    do_revise_rubric(erin, project.rubric, criteria, note="Ask for the hidden tests.")
    sent_back = pipeline.do_require_rereview(erin, project)
    assert [c.pk for c in sent_back] == [disputed.pk]
    disputed.refresh_from_db()
    assert disputed.state == ComparisonState.IN_REVIEW
    assert not old_first.reviews.filter(superseded_at__isnull=True).exists()
    event = AuditEvent.objects.get(verb="comparison.rereview_required")
    assert event.new_values["rubric_version"] == 2 and event.reason == "rubric changed to version 2"
    old_first.refresh_from_db()
    assert old_first.rubric_version.number == 1  # judgments stay bound to their version
    new_review = review(bob, old_first)
    assert new_review.rubric_version.number == 2
    decided.refresh_from_db()
    assert decided.state == ComparisonState.DECIDED


def test_rereview_is_refused_when_the_project_does_not_ask_for_it(erin, bob) -> None:
    project = make_project()
    with pytest.raises(pipeline.IllegalTransition, match="does not ask for re-review"):
        pipeline.do_require_rereview(erin, project)
    do_update_project(erin, project, {"rereview_on_rubric_change": True}, reason="policy")
    assert pipeline.do_require_rereview(erin, project) == []
    with pytest.raises(PermissionDenied):
        pipeline.do_require_rereview(bob, project)


def test_a_project_without_reviews_settles_when_the_judgments_are_in(alice, anna) -> None:
    agreeing = make_comparison(project=make_project(reviewers_per_judgment=0))
    submitted_judgment(agreeing, alice, 2)
    submitted_judgment(agreeing, anna, 3)
    agreeing.refresh_from_db()
    assert agreeing.state == ComparisonState.DECIDED
    assert Decision.objects.get(comparison=agreeing).overall == 2
    assert verbs(agreeing) == [
        "comparison.claimed",
        "comparison.claimed",
        "comparison.start_review",
        "comparison.agreed",
        "comparison.decided",
    ]
    assert paid() == [("alice", "judgment", 2500), ("anna", "judgment", 2500)]


def test_rereview_in_a_project_without_reviews_settles_again_at_once(
    alice, anna, carol, erin
) -> None:
    # Found by the state-machine test: the comparison was left in review with nothing to wait for.
    project = make_project(reviewers_per_judgment=0, rereview_on_rubric_change=True)
    comparison = make_comparison(project=project)
    submitted_judgment(comparison, alice, -2)
    submitted_judgment(comparison, anna, 2)
    criteria = [dict(c) for c in DEFAULT_CRITERIA]
    criteria[0]["guidance"] += " Run the hidden tests before rating."
    do_revise_rubric(erin, project.rubric, criteria, note="Ask for the hidden tests.")
    assert pipeline.do_require_rereview(erin, project) == [comparison]
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    assert verbs(comparison)[-2:] == ["comparison.rereview_required", "comparison.disputed"]
    ratings = {"correctness": -1, "security": None, "reliability": 0, "maintainability": 0}
    pipeline.do_adjudicate(carol, comparison, overall=-1, ratings=ratings, rationale="x" * 40)
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DECIDED
