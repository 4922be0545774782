"""Many reviewers and adjudicators acting at once on PostgreSQL, each thread on its own
connection: no review is lost, no transition happens twice, no earning is paid twice. A second
test adds what annotators do at the same time (resubmitting judgments sent back, claiming new
comparisons of the same project) and checks nothing deadlocks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from marlin.accounts.models import Earning
from marlin.audit.actions import verify_chain
from marlin.audit.models import AuditEvent
from marlin.review import pipeline
from marlin.review.models import Claim, Comparison, Decision, Judgment, Review
from tests.review.factories import agree_all, make_comparison, make_project, submitted_judgment

COMPARISONS = 8
ROUND_SECONDS = 120
REVIEWERS = 6
ADJUDICATORS = 3
RATINGS = {"correctness": -1, "security": None, "reliability": 0, "maintainability": 0}

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")


def _run_at_once(workers: list[Callable[[], None]], stop: threading.Event) -> list[BaseException]:
    """Start every worker at the same moment; the first failure sets `stop` so the others end."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def wrap(work: Callable[[], None]) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            stop.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


class Race:
    """Comparisons with both judgments in (odd ones agree, even ones dispute), and the workers
    that review and adjudicate them until every one is decided."""

    def __init__(self, make_user) -> None:
        self.project = make_project(overlap=2, reviewers_per_judgment=2)
        self.alice, self.anna = make_user("alice", "annotator"), make_user("anna", "annotator")
        self.reviewers = [make_user(f"reviewer{n}", "reviewer") for n in range(REVIEWERS)]
        self.adjudicators = [
            make_user(f"adjudicator{n}", "adjudicator") for n in range(ADJUDICATORS)
        ]
        self.comparisons = []
        for n in range(COMPARISONS):
            comparison = make_comparison(project=self.project)
            submitted_judgment(comparison, self.alice, -2)
            submitted_judgment(comparison, self.anna, -1 if n % 2 else 2)
            self.comparisons.append(comparison)
        self.judgments = list(Judgment.objects.order_by("pk"))
        self.per_criterion = agree_all(self.comparisons[0])
        self.reviewed: list[int] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def reviewer_work(self, reviewer) -> None:
        # Each reviewer tries every judgment, starting at a different place, round after round
        # (a resubmitted judgment becomes reviewable during the race).
        start = self.reviewers.index(reviewer) * 3
        for _ in range(200):
            if self.stop.is_set():
                return
            for judgment in self.judgments[start:] + self.judgments[:start]:
                try:
                    review = pipeline.do_review(
                        reviewer,
                        judgment,
                        verdict="agree",
                        reason="fine",
                        per_criterion=self.per_criterion,
                    )
                except pipeline.IllegalTransition:
                    continue
                with self.lock:
                    self.reviewed.append(review.pk)
            if not Comparison.objects.filter(
                pk__in=[c.pk for c in self.comparisons], state="in_review"
            ).exists():
                return
        raise AssertionError("comparisons were still in review after 200 rounds")

    def adjudicator_work(self, adjudicator) -> None:
        # Keep trying until every comparison is decided: disputes appear while reviews land.
        ids = [c.pk for c in self.comparisons]
        # Bounded in time, not only in rounds: a round with nothing to adjudicate is quick, and on
        # a loaded machine 400 of them passed before the reviewers had finished (no deadlock).
        deadline = time.monotonic() + ROUND_SECONDS
        for _ in range(20_000):
            if self.stop.is_set():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
            if not Comparison.objects.filter(pk__in=ids).exclude(state="decided").exists():
                return
            for comparison in Comparison.objects.filter(pk__in=ids, state="disputed"):
                try:
                    pipeline.do_adjudicate(
                        adjudicator,
                        comparison,
                        overall=-1,
                        ratings=RATINGS,
                        rationale="A is right on the empty ledger.",
                    )
                except pipeline.IllegalTransition:
                    pass
                try:
                    pipeline.do_decide_from_agreement(adjudicator, comparison)
                except (pipeline.IllegalTransition, PermissionDenied):
                    pass
        raise AssertionError(f"comparisons were still open after {ROUND_SECONDS} s")

    def workers(self) -> list[Callable[[], None]]:
        return [lambda r=r: self.reviewer_work(r) for r in self.reviewers] + [
            lambda a=a: self.adjudicator_work(a) for a in self.adjudicators
        ]

    def check(self, revision_requests: int = 0) -> None:
        # No lost review: every successful do_review left its row, and each judgment has exactly
        # two current ones (revision requests are superseded history).
        current = Review.objects.filter(superseded_at__isnull=True)
        assert sorted(self.reviewed) == sorted(current.values_list("pk", flat=True))
        assert Counter(current.values_list("judgment_id", flat=True)) == {
            j.pk: 2 for j in self.judgments
        }
        assert Review.objects.filter(verdict="revision").count() == revision_requests
        # No transition applied twice.
        events = Counter(
            AuditEvent.objects.filter(object_type="review.comparison").values_list(
                "object_id", "verb"
            )
        )
        for n, comparison in enumerate(self.comparisons):
            settled = (
                {"comparison.start_review", "comparison.agreed", "comparison.decided"}
                if n % 2
                else {"comparison.start_review", "comparison.disputed", "comparison.adjudicated"}
            )
            verbs = (
                "comparison.start_review",
                "comparison.agreed",
                "comparison.decided",
                "comparison.disputed",
                "comparison.adjudicated",
            )
            counts = {verb: events[(str(comparison.pk), verb)] for verb in verbs}
            assert counts == {verb: int(verb in settled) for verb in verbs}, (n, counts)
        assert Decision.objects.count() == COMPARISONS
        assert AuditEvent.objects.filter(verb="review.submitted").count() == 4 * COMPARISONS
        # No earning paid twice: exactly what the work earned.
        half = COMPARISONS // 2
        expected = Counter(
            {
                "review": 4 * COMPARISONS + revision_requests,
                "judgment": 2 * half + half,
                "adjudication": half,
            }
        )
        assert Counter(Earning.objects.values_list("kind", flat=True)) == expected
        sources = list(Earning.objects.values_list("kind", "source_id"))
        assert len(sources) == len(set(sources))
        assert verify_chain() is None


def test_concurrent_reviews_and_adjudications_lose_nothing_and_do_nothing_twice(make_user) -> None:
    race = Race(make_user)
    errors = _run_at_once(race.workers(), race.stop)
    assert not errors, errors
    race.check()


def test_resubmissions_and_claims_during_reviews_do_not_deadlock(make_user) -> None:
    from marlin.review import queue
    from marlin.review.actions import do_submit_judgment

    race = Race(make_user)
    sent_back = [j for j in race.judgments if j.annotator == race.alice][:4]
    for judgment in sent_back:
        pipeline.do_request_revision(
            race.reviewers[0], judgment, comments="Name the failing test in your rationale."
        )
    for _ in range(6):
        make_comparison(project=race.project)  # new work in the same project, for the queue
    newcomers = [make_user(f"annotator{n}", "annotator") for n in range(6)]

    def resubmit() -> None:
        for judgment in sent_back:
            do_submit_judgment(race.alice, Judgment.objects.get(pk=judgment.pk))

    def claim(annotator) -> None:
        assert queue.next_comparison(annotator, race.project) is not None

    errors = _run_at_once(
        [*race.workers(), resubmit, *[lambda a=a: claim(a) for a in newcomers]], race.stop
    )
    assert not errors, errors
    race.check(revision_requests=len(sent_back))
    assert Claim.objects.filter(released_at__isnull=True).count() == len(newcomers)
