"""Many reviewers and adjudicators acting at once on PostgreSQL, each thread on its own
connection: no review is lost, no transition happens twice, no earning is paid twice."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from marlin.accounts.models import Earning
from marlin.audit.actions import verify_chain
from marlin.audit.models import AuditEvent
from marlin.review import pipeline
from marlin.review.models import Comparison, Decision, Judgment, Review
from tests.review.factories import agree_all, make_comparison, make_project, submitted_judgment

COMPARISONS = 8
REVIEWERS = 6
ADJUDICATORS = 3
RATINGS = {"correctness": -1, "security": None, "reliability": 0, "maintainability": 0}


def _run_at_once(workers: list) -> list[BaseException]:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def wrap(work) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_reviews_and_adjudications_lose_nothing_and_do_nothing_twice(make_user) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    project = make_project(overlap=2, reviewers_per_judgment=2)
    alice, anna = make_user("alice", "annotator"), make_user("anna", "annotator")
    reviewers = [make_user(f"reviewer{n}", "reviewer") for n in range(REVIEWERS)]
    adjudicators = [make_user(f"adjudicator{n}", "adjudicator") for n in range(ADJUDICATORS)]
    comparisons = []
    for n in range(COMPARISONS):
        comparison = make_comparison(project=project)
        submitted_judgment(comparison, alice, -2)
        submitted_judgment(comparison, anna, -1 if n % 2 else 2)  # odd ones agree, even ones dispute
        comparisons.append(comparison)
    judgments = list(Judgment.objects.order_by("pk"))
    per_criterion = agree_all(comparisons[0])
    reviewed: list[int] = []
    lock = threading.Lock()

    def reviewer_work(reviewer) -> None:
        # Each reviewer tries every judgment, starting at a different place.
        start = reviewers.index(reviewer) * 3
        for judgment in judgments[start:] + judgments[:start]:
            try:
                review = pipeline.do_review(reviewer, judgment, verdict="agree", reason="fine", per_criterion=per_criterion)
            except pipeline.IllegalTransition:
                continue
            with lock:
                reviewed.append(review.pk)

    def adjudicator_work(adjudicator) -> None:
        # Keep trying until every comparison is decided: disputes appear while reviews land.
        for _ in range(400):
            open_ids = list(Comparison.objects.exclude(state="decided").values_list("pk", flat=True))
            if not open_ids:
                return
            for comparison in Comparison.objects.filter(pk__in=open_ids, state="disputed"):
                try:
                    pipeline.do_adjudicate(adjudicator, comparison, overall=-1, ratings=RATINGS, rationale="A is right on the empty ledger.")
                except pipeline.IllegalTransition:
                    pass
                try:
                    pipeline.do_decide_from_agreement(adjudicator, comparison)
                except (pipeline.IllegalTransition, PermissionDenied):
                    pass
        raise AssertionError("comparisons were still open after 400 rounds")

    workers = [lambda r=r: reviewer_work(r) for r in reviewers] + [lambda a=a: adjudicator_work(a) for a in adjudicators]
    errors = _run_at_once(workers)
    assert not errors, errors

    # No lost review: every successful do_review left its row, and each judgment has exactly two.
    assert sorted(reviewed) == sorted(Review.objects.values_list("pk", flat=True))
    assert Counter(Review.objects.values_list("judgment_id", flat=True)) == {j.pk: 2 for j in judgments}
    # No transition applied twice.
    events = Counter(AuditEvent.objects.filter(object_type="review.comparison").values_list("object_id", "verb"))
    for n, comparison in enumerate(comparisons):
        key = str(comparison.pk)
        settled = ("comparison.agreed", "comparison.decided") if n % 2 else ("comparison.disputed", "comparison.adjudicated")
        counts = {verb: events[(key, verb)] for verb in ("comparison.start_review", "comparison.agreed", "comparison.decided", "comparison.disputed", "comparison.adjudicated")}
        assert counts == {verb: (1 if verb in settled or verb == "comparison.start_review" else 0) for verb in counts}, (n, counts)
    assert Decision.objects.count() == COMPARISONS
    assert Counter(AuditEvent.objects.filter(object_type="review.review").values_list("verb", flat=True)) == {"review.submitted": 4 * COMPARISONS}
    # No earning paid twice: exactly what the work earned.
    agreed, disputed = COMPARISONS // 2, COMPARISONS // 2
    expected = Counter({"review": 4 * COMPARISONS, "judgment": 2 * agreed + 1 * disputed, "adjudication": disputed})
    assert Counter(Earning.objects.values_list("kind", flat=True)) == expected
    sources = list(Earning.objects.values_list("kind", "source_id"))
    assert len(sources) == len(set(sources))
    assert verify_chain() is None
