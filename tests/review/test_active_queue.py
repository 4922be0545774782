"""The annotators' queue with active selection, the per-expert pair cap and triage (issue 16),
through the API and the pages people use. The statistics run in the worker's sweep
(marlin.analytics.queue_order, which `marlin worker` calls); `next` only reads what it stored.

alice and anna annotate, bob reviews, dave authors, erin administers.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client

from marlin.accounts.models import ApiToken
from marlin.analytics import queue_order
from marlin.audit.models import AuditEvent
from marlin.checks.models import CheckResult, CheckStatus
from marlin.management.commands.worker import recover_all
from marlin.review.comparisons import create_comparison
from marlin.review.models import Comparison, ComparisonState, Routing
from marlin.tasks.models import PairSelection
from tests.analytics_views.factories import (
    decide,
    make_agent,
    make_project,
    make_repository,
    make_run,
    make_task,
)

DRAFT = {
    "ratings": {"correctness": -2, "security": None, "reliability": -1, "maintainability": 0},
    "overall": -2,
    "rationale": "A handles the empty ledger and keeps the public API; B raises KeyError on it "
    "and breaks the callers that pass None.",
    "confidence": 4,
}


def _headers(user) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def _waiting(project, first, second, n: int):
    """A comparison of two agents waiting for judgments, on a new task, made by the function
    the pairing uses (sides at random, its agent pair, pending under triage)."""
    task = make_task(project, make_repository(f"acme/repo{n}"), n=n)
    return create_comparison(project, task, make_run(task, first), make_run(task, second))


def _next(client: Client, user, project=None):
    url = "/api/comparisons/next" + (f"?project_id={project.pk}" if project else "")
    return client.post(url, headers=_headers(user))


def _judge_through_api(client: Client, user, public_id: str, overall: int = -2):
    url = f"/api/comparisons/{public_id}/judgment"
    headers = _headers(user)
    body = DRAFT | {"draft_revision": 0, "overall": overall}
    saved = client.put(url, body, content_type="application/json", headers=headers)
    assert saved.status_code == 200, saved.json()
    submitted = client.post(url + "/submit", headers=headers)
    assert submitted.status_code == 200, submitted.json()


def _hidden_tests(comparison: Comparison, a_passes: bool, b_passes: bool) -> None:
    for run, passes in ((comparison.run_a, a_passes), (comparison.run_b, b_passes)):
        candidate = run.turns.get(number=1).candidate
        CheckResult.objects.create(
            candidate=candidate,
            check_index=5,
            name="hidden tests",
            kind="hidden-tests",
            status=CheckStatus.PASSED if passes else CheckStatus.FAILED,
        )


# Active selection orders the queue.


@pytest.fixture
def league(db, make_user):
    """Four agents: p and q compared 40 times, r and s once each against p."""
    project = make_project("Active", overlap=1, pair_selection=PairSelection.ACTIVE)
    p, q, r, s = (make_agent(name) for name in ("p-agent", "q-agent", "r-agent", "s-agent"))
    for n in range(40):
        _prefer(_waiting(project, p, q, 1000 + n), p if n % 4 else q, 2)
    _prefer(_waiting(project, p, r, 2000), p, 1)
    _prefer(_waiting(project, p, s, 2001), s, 1)
    return project, (p, q, r, s)


def _prefer(comparison: Comparison, winner, strength: int) -> None:
    """Decide for `winner` whichever side the pairing drew it on, so the league's standings do
    not depend on the random sides."""
    on_a = comparison.run_a.agent_id == winner.pk
    decide(comparison, -strength if on_a else strength)


def test_the_queue_hands_out_the_comparison_worth_most_first_not_the_oldest(
    client, league, alice, dave
):
    project, (p, q, r, s) = league
    known = _waiting(project, p, q, 1)  # older, but p vs q is well measured already
    uncertain = _waiting(project, r, s, 2)  # two agents with one decision each
    queue_order.refresh_project(project, seed=1, explore=0.0)
    known.refresh_from_db()
    uncertain.refresh_from_db()
    assert uncertain.priority > known.priority
    assert "shrinks the leaderboard's intervals" in uncertain.priority_note
    taken = _next(client, alice)
    assert taken.status_code == 200, taken.json()
    assert taken.json()["public_id"] == uncertain.public_id
    # The project page and the selection page say why, with the pair and the measured minutes.
    author = Client()
    author.force_login(dave)
    page = author.get(f"/tasks/projects/{project.pk}/").content.decode()
    assert "Next in the annotators&#x27; queue" in page or "Next in the annotators' queue" in page
    pair = f"{uncertain.run_a.agent.name} vs {uncertain.run_b.agent.name}"  # sides as drawn
    assert pair in page and "per expert hour" in page
    selection = author.get(f"/leaderboard/{project.pk}/selection/")
    assert selection.status_code == 200
    table = selection.content.decode().split('id="queue-order"')[1]
    assert known.public_id in table and uncertain.public_id in table
    assert pair in table and "per expert hour" in table


def test_a_project_aiming_at_the_ranking_orders_its_queue_by_that_target(client, league, alice):
    """r and s each have one decision: their order is the one most in doubt, so the ranking
    target also puts r vs s first, and its note speaks of agents in the wrong order."""
    project, (p, q, r, s) = league
    project.selection_target = "order"
    project.save(update_fields=["selection_target"])
    known = _waiting(project, p, q, 1)
    uncertain = _waiting(project, r, s, 2)
    queue_order.refresh_project(project, seed=1, explore=0.0)
    known.refresh_from_db()
    uncertain.refresh_from_db()
    assert uncertain.priority > known.priority
    assert "wrong order" in uncertain.priority_note
    assert _next(client, alice).json()["public_id"] == uncertain.public_id


def test_a_uniform_project_keeps_oldest_first(client, league, alice):
    project, (p, q, r, s) = league
    project.pair_selection = PairSelection.UNIFORM
    project.save(update_fields=["pair_selection"])
    known = _waiting(project, p, q, 1)
    _waiting(project, r, s, 2)
    queue_order.refresh_project(project, seed=1)
    assert _next(client, alice).json()["public_id"] == known.public_id


def test_the_workers_sweep_orders_the_queue_and_skips_projects_that_did_not_change(
    client, league, alice
):
    project, (p, q, r, s) = league
    waiting = [_waiting(project, r, s, 1), _waiting(project, p, q, 2)]
    assert recover_all(sweep=False).queues == 1
    priorities = sorted(
        Comparison.objects.filter(pk__in=[w.pk for w in waiting]).values_list("priority", flat=True)
    )
    assert priorities == [0.5, 1.0]
    assert recover_all(sweep=False).queues == 0  # nothing changed since
    # alice takes one (overlap 2 now, so it keeps a free place): it goes first from now on.
    project.overlap = 2
    project.save(update_fields=["overlap"])
    taken = _next(client, alice).json()["public_id"]
    assert recover_all(sweep=False).queues == 1
    first = Comparison.objects.filter(project=project, state="awaiting_judgments").order_by(
        "-priority"
    )[0]
    assert first.public_id == taken and "already taken" in first.priority_note
    _waiting(project, q, s, 3)
    assert recover_all(sweep=False).queues == 1


# The per-expert pair cap.


def test_an_expert_at_the_cap_for_a_pair_is_not_given_it_again_while_others_are(
    client, db, alice, make_user
):
    project = make_project("Capped", overlap=2, max_judgments_per_pair=1)
    x, y, z, w = (make_agent(name) for name in ("x-agent", "y-agent", "z-agent", "w-agent"))
    first_xy = _waiting(project, x, y, 1)
    second_xy = _waiting(project, y, x, 2)  # the same pair, sides the other way round
    other = _waiting(project, z, w, 3)
    assert _next(client, alice).json()["public_id"] == first_xy.public_id
    _judge_through_api(client, alice, first_xy.public_id)
    # second_xy is older than other and has free places, but alice has seen x vs y once.
    assert _next(client, alice).json()["public_id"] == other.public_id
    _judge_through_api(client, alice, other.public_id)
    empty = _next(client, alice)
    assert empty.status_code == 404 and "queue is empty" in empty.json()["detail"]
    anna = make_user("anna", "annotator")
    assert _next(client, anna).json()["public_id"] == first_xy.public_id
    _judge_through_api(client, anna, first_xy.public_id)
    # anna reached the cap too; a third expert still gets x vs y.
    assert _next(client, anna).json()["public_id"] == other.public_id
    tom = make_user("tom", "annotator")
    assert _next(client, tom).json()["public_id"] == second_xy.public_id


def test_no_cap_when_the_project_sets_none(client, db, alice):
    project = make_project("Uncapped", overlap=1, max_judgments_per_pair=0)
    x, y = make_agent("x-agent"), make_agent("y-agent")
    first, second = _waiting(project, x, y, 1), _waiting(project, x, y, 2)
    assert _next(client, alice).json()["public_id"] == first.public_id
    _judge_through_api(client, alice, first.public_id)
    assert _next(client, alice).json()["public_id"] == second.public_id


# Triage and the weak label.


@pytest.fixture
def triaged(db, make_user):
    """A project with triage on and 24 decided comparisons where the hidden tests voted for the
    side the experts preferred; two comparisons waiting: one where the hidden tests split, one
    where both sides pass them."""
    project = make_project(
        "Triage", overlap=2, reviewers_per_judgment=1, triage=True, min_rationale_chars=20
    )
    x, y = make_agent("x-agent"), make_agent("y-agent")
    for n in range(24):
        decided = _waiting(project, x, y, 1000 + n)
        a_wins = n % 2 == 0
        _hidden_tests(decided, a_wins, not a_wins)
        decide(decided, -2 if a_wins else 2)
    decisive = _waiting(project, x, y, 1)
    _hidden_tests(decisive, True, False)
    unclear = _waiting(project, x, y, 2)
    _hidden_tests(unclear, True, True)
    project.max_judgments_per_pair = 0
    project.save(update_fields=["max_judgments_per_pair"])
    return project, decisive, unclear


def test_triage_routes_decisive_comparisons_to_one_annotator_without_review(
    client, triaged, alice, make_user, erin
):
    project, decisive, unclear = triaged
    # Not routed yet (the worker has not seen its checks): it waits out of the queue.
    assert _next(client, alice).status_code == 404
    queue_order.refresh_project(project, seed=0)
    decisive.refresh_from_db()
    unclear.refresh_from_db()
    assert decisive.routing == Routing.SINGLE
    assert "one annotator, no review" in decisive.routing_reason
    assert unclear.routing == Routing.FULL
    assert "no check voted" in unclear.routing_reason
    event = AuditEvent.objects.get(verb="comparison.routed", object_id=str(decisive.pk))
    assert event.new_values["routing"] == "single" and event.new_values["weak_label"]["a"] > 0.9
    # One place on the decisive one: alice takes it, anna gets the other one.
    assert _next(client, alice).json()["public_id"] == decisive.public_id
    anna = make_user("anna", "annotator")
    assert _next(client, anna).json()["public_id"] == unclear.public_id
    # alice's judgment decides it: no review.
    _judge_through_api(client, alice, decisive.public_id)
    decisive.refresh_from_db()
    assert decisive.state == ComparisonState.DECIDED
    assert decisive.decision.overall == -2
    # The other one needs its second judgment and then a review, as before.
    _judge_through_api(client, anna, unclear.public_id, overall=1)
    assert Comparison.objects.get(pk=unclear.pk).state == ComparisonState.AWAITING_JUDGMENTS
    # Admins read why on the timeline.
    admin = Client()
    admin.force_login(erin)
    timeline = admin.get(f"/review/{decisive.public_id}/timeline/").content.decode()
    assert "comparison.routed" in timeline and "Routing:" in timeline


def test_triage_waits_for_enough_decisions_before_trusting_the_label_model(db, make_user):
    project = make_project("Young", overlap=2, triage=True)
    x, y = make_agent("x-agent"), make_agent("y-agent")
    for n in range(3):
        decided = _waiting(project, x, y, 1000 + n)
        _hidden_tests(decided, True, False)
        decide(decided, -2)
    waiting = _waiting(project, x, y, 1)
    _hidden_tests(waiting, True, False)
    queue_order.refresh_project(project, seed=0)
    waiting.refresh_from_db()
    assert waiting.routing == Routing.FULL
    assert "learnt from 3 decided comparisons; triage needs 20" in waiting.routing_reason


def test_a_comparison_whose_checks_still_run_waits_and_triage_switched_off_frees_it(
    client, db, alice
):
    project = make_project("Running", overlap=2, triage=True)
    x, y = make_agent("x-agent"), make_agent("y-agent")
    waiting = _waiting(project, x, y, 1)
    CheckResult.objects.filter(candidate__turn__run=waiting.run_a).update(
        status=CheckStatus.RUNNING
    )
    queue_order.refresh_project(project, seed=0)
    waiting.refresh_from_db()
    assert waiting.routing == Routing.PENDING and waiting.weak_label is None
    assert _next(client, alice).status_code == 404
    project.triage = False
    project.save(update_fields=["triage"])
    queue_order.refresh_project(project, seed=0)
    assert _next(client, alice).json()["public_id"] == waiting.public_id


def test_reviewers_see_the_weak_label_and_annotators_never_do_before_their_judgment(
    client, triaged, alice, bob, make_user
):
    project, decisive, unclear = triaged
    project.triage = False  # every comparison gets two judgments and a review
    project.save(update_fields=["triage"])
    queue_order.refresh_project(project, seed=0)
    decisive.refresh_from_db()
    assert decisive.weak_label is not None and decisive.weak_label["a"] > 0.9
    # alice (who also reviews on other projects) works on it: no weak label anywhere for her.
    both = make_user("rita", "annotator", "reviewer")
    for annotator in (alice, both):
        taken = _next(client, annotator, project).json()
        assert taken["public_id"] == decisive.public_id
        assert taken["weak_label"] is None and taken["routing"] is None
        shown = client.get(
            f"/api/comparisons/{decisive.public_id}", headers=_headers(annotator)
        ).json()
        assert shown["weak_label"] is None and shown["routing_reason"] is None
        browser = Client()
        browser.force_login(annotator)
        html = browser.get(f"/compare/{decisive.public_id}/").content.decode()
        assert "weak label" not in html.lower() and "A better 9" not in html
    for annotator in (alice, both):
        _judge_through_api(client, annotator, decisive.public_id)
    decisive.refresh_from_db()
    assert decisive.state == ComparisonState.IN_REVIEW
    # bob reviews: the page and the API show the weak label.
    shown = client.get(f"/api/comparisons/{decisive.public_id}", headers=_headers(bob)).json()
    assert shown["weak_label"]["a"] > 0.9
    assert any(
        "hidden tests" in vote and vote.endswith(": A") for vote in shown["weak_label"]["votes"]
    )
    reviewer = Client()
    reviewer.force_login(bob)
    judgment = decisive.judgments.get(annotator=alice)
    page = reviewer.get(f"/review/{decisive.public_id}/judgments/{judgment.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "What the checks suggest (weak label)" in html and "A better 9" in html


# Concurrency: a comparison routed to one annotator is claimed once, however many ask at once.


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_single_routed_comparison_goes_to_one_annotator(make_user):
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    project = make_project("Race", overlap=3, max_judgments_per_pair=0)
    x, y = make_agent("x-agent"), make_agent("y-agent")
    singles = [_waiting(project, x, y, n) for n in range(3)]
    Comparison.objects.filter(pk__in=[c.pk for c in singles]).update(routing=Routing.SINGLE)
    full = _waiting(project, x, y, 9)
    annotators = [make_user(f"ann{i}", "annotator") for i in range(12)]
    headers = [_headers(a) for a in annotators]
    barrier = threading.Barrier(len(annotators))
    results: list[object] = [None] * len(annotators)

    def take(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            response = Client().post("/api/comparisons/next", headers=headers[index])
            results[index] = (
                response.json().get("public_id") if response.status_code == 200 else 404
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(annotators))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [r for r in results if isinstance(r, Exception)], results
    taken = [r for r in results if r != 404]
    for single in singles:
        assert taken.count(single.public_id) == 1
    assert taken.count(full.public_id) == 3
    assert results.count(404) == len(annotators) - 6
