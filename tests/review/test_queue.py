"""The annotators' queue: overlap, eligibility, language preference, expiry and concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from marlin.accounts.models import ExpertProfile
from marlin.review import queue
from marlin.review.actions import do_release_claim
from marlin.review.models import Claim, Comparison, ComparisonState, Judgment
from tests.review.factories import make_comparison, make_project, submitted_judgment


def _annotators(make_user, n: int, prefix: str = "ann") -> list:
    return [make_user(f"{prefix}{i}", "annotator") for i in range(n)]


def test_it_hands_out_each_comparison_to_at_most_overlap_annotators(make_user):
    project = make_project(overlap=2)
    comparison = make_comparison(project)
    first, second, third = _annotators(make_user, 3)
    assert queue.next_comparison(first) == comparison
    assert queue.next_comparison(second) == comparison
    assert queue.next_comparison(third) is None
    assert Claim.objects.filter(comparison=comparison, released_at__isnull=True).count() == 2


def test_it_gives_work_in_progress_back_before_new_work(alice):
    project = make_project(overlap=1)
    older = make_comparison(project)
    make_comparison(project)
    assert queue.next_comparison(alice) == older
    assert queue.next_comparison(alice) == older  # the same claim, not a second one
    assert Claim.objects.filter(annotator=alice).count() == 1


def test_it_never_offers_a_comparison_already_judged_or_on_a_task_you_wrote(make_user, alice):
    project = make_project(overlap=3)
    judged = make_comparison(project)
    submitted_judgment(judged, alice, overall=-2)
    own = make_comparison(project)
    own.task.created_by = alice
    own.task.save(update_fields=["created_by"])
    fresh = make_comparison(project)
    assert queue.next_comparison(alice) == fresh
    assert queue.next_comparison(make_user("anna", "annotator")) == judged


def test_it_prefers_repositories_in_the_annotators_languages(alice):
    project = make_project(overlap=1)
    rust = make_comparison(project)
    python = make_comparison(project)
    for comparison, language in ((rust, "Rust"), (python, "Python")):
        comparison.task.repository.language = language
        comparison.task.repository.save(update_fields=["language"])
    ExpertProfile.objects.create(user=alice, languages=["python"])
    assert queue.next_comparison(alice) == python


def test_it_hands_out_the_oldest_comparison_first(make_user):
    project = make_project(overlap=1)
    newer = make_comparison(project)
    older = make_comparison(project)
    Comparison.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=1))
    assert queue.next_comparison(make_user("ann", "annotator")) == older
    assert queue.next_comparison(make_user("bea", "annotator")) == newer


def test_it_skips_comparisons_that_are_not_awaiting_judgments_or_in_inactive_projects(alice):
    project = make_project(overlap=1)
    voided = make_comparison(project)
    Comparison.objects.filter(pk=voided.pk).update(state=ComparisonState.VOIDED)
    paused = make_project(overlap=1, is_active=False)
    make_comparison(paused)
    assert queue.next_comparison(alice) is None


def test_an_abandoned_claim_expires_and_frees_its_slot(make_user):
    project = make_project(overlap=1, claim_timeout_minutes=30)
    comparison = make_comparison(project)
    first, second = _annotators(make_user, 2)
    assert queue.next_comparison(first) == comparison
    assert queue.next_comparison(second) is None
    Claim.objects.filter(annotator=first).update(
        last_seen_at=timezone.now() - timedelta(minutes=31)
    )
    # Asking does not release it: the worker's sweep does.
    assert queue.next_comparison(second) is None
    assert queue.release_expired_claims() == 1
    assert queue.next_comparison(second) == comparison
    assert Claim.objects.get(annotator=first).released_at is not None
    assert queue.recount_slots() == []


def test_activity_keeps_a_claim_alive(make_user):
    project = make_project(overlap=1, claim_timeout_minutes=30)
    comparison = make_comparison(project)
    first, second = _annotators(make_user, 2)
    queue.next_comparison(first)
    Claim.objects.filter(annotator=first).update(
        last_seen_at=timezone.now() - timedelta(minutes=29)
    )
    assert queue.touch_claim(first, comparison)
    assert queue.release_expired_claims(now=timezone.now() + timedelta(minutes=2)) == 0
    assert queue.next_comparison(second) is None


def test_giving_a_comparison_back_frees_its_slot(make_user):
    project = make_project(overlap=1)
    comparison = make_comparison(project)
    first, second = _annotators(make_user, 2)
    queue.next_comparison(first)
    assert do_release_claim(first, comparison)
    assert queue.next_comparison(second) == comparison


def test_submitted_judgments_take_slots(make_user):
    project = make_project(overlap=2)
    comparison = make_comparison(project)
    first, second, third = _annotators(make_user, 3)
    submitted_judgment(comparison, first, overall=1)
    submitted_judgment(comparison, second, overall=2)
    assert queue.next_comparison(third) is None


def test_only_annotators_may_take_work(bob):
    make_comparison(make_project(overlap=1))
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied, match="annotator"):
        queue.next_comparison(bob)


def _claim_at_once(annotators: list) -> list[Exception]:
    """Every annotator asks for work at the same moment, each in its own thread/connection."""
    barrier = threading.Barrier(len(annotators))
    errors: list[Exception] = []

    def ask(user) -> None:
        try:
            barrier.wait()
            queue.next_comparison(user)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=(user,)) for user in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def _assert_never_over_overlap(project) -> None:
    for comparison in Comparison.objects.filter(project=project):
        open_claims = Claim.objects.filter(comparison=comparison, released_at__isnull=True)
        assert open_claims.count() <= project.overlap
        assert open_claims.values("annotator").distinct().count() == open_claims.count()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_concurrent_claims_with_skip_locked_never_exceed_the_overlap(make_user):
    if connection.vendor != "postgresql":
        # pytest-django's in-memory SQLite database locks whole tables across threads; a served
        # SQLite database serialises claims with IMMEDIATE transactions instead.
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    project = make_project(overlap=2)
    for _ in range(4):
        make_comparison(project)
    annotators = _annotators(make_user, 24)
    for _ in range(3):  # several rounds: claims, then everyone asks again at once
        errors = _claim_at_once(annotators)
        assert not errors, errors
        _assert_never_over_overlap(project)
    assert Claim.objects.filter(released_at__isnull=True).count() == 8


def test_a_draft_whose_claim_expired_is_claimed_again_while_a_place_is_free(
    alice, make_user, client_for
):
    project = make_project(overlap=1, claim_timeout_minutes=30)
    comparison = make_comparison(project)
    queue.next_comparison(alice)
    client = client_for(alice)
    client.post(
        f"/compare/{comparison.public_id}/draft/", {"draft_revision": "0", "rationale": "half done"}
    )
    half_an_hour_ago = timezone.now() - timedelta(minutes=31)
    Claim.objects.filter(annotator=alice).update(last_seen_at=half_an_hour_ago)
    # The save itself is activity: the sweep keeps the claim until it too is old.
    assert queue.release_expired_claims() == 0
    Judgment.objects.filter(annotator=alice).update(updated_at=half_an_hour_ago)
    assert queue.release_expired_claims() == 1
    response = client.get(f"/compare/{comparison.public_id}/")
    assert response.status_code == 200 and "half done" in response.content.decode()
    assert queue.open_claim(alice, comparison) is None  # reading the page claims nothing
    saved = client.post(
        f"/compare/{comparison.public_id}/draft/", {"draft_revision": "1", "rationale": "done"}
    )
    assert saved.status_code == 200  # the next save claims it again
    assert queue.open_claim(alice, comparison) is not None


def test_a_draft_whose_place_was_taken_is_kept_and_the_annotator_is_told(
    alice, make_user, client_for
):
    project = make_project(overlap=1, claim_timeout_minutes=30)
    comparison = make_comparison(project)
    queue.next_comparison(alice)
    client_for(alice).post(
        f"/compare/{comparison.public_id}/draft/", {"draft_revision": "0", "rationale": "half done"}
    )
    half_an_hour_ago = timezone.now() - timedelta(minutes=31)
    Claim.objects.filter(annotator=alice).update(last_seen_at=half_an_hour_ago)
    Judgment.objects.filter(annotator=alice).update(updated_at=half_an_hour_ago)
    assert queue.release_expired_claims() == 1
    anna = make_user("anna", "annotator")
    assert queue.next_comparison(anna) == comparison
    response = client_for(alice).get(f"/compare/{comparison.public_id}/")
    assert response.status_code == 403
    assert "Your claim on this comparison expired" in response.content.decode()
    assert "Your draft is kept" in response.content.decode()
    assert Judgment.objects.get(annotator=alice).rationale == "half done"


def test_the_queue_can_be_asked_for_one_project(alice):
    pilot, other = make_project(overlap=1), make_project(overlap=1)
    make_comparison(pilot)
    wanted = make_comparison(other)
    assert queue.next_comparison(alice, project=other) == wanted
