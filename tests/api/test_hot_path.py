"""The annotator's hot path through the API (next -> GET -> PUT draft -> submit): how many SQL
queries each call makes, and that `next` never hands one comparison to more annotators than
its overlap, nor says the queue is empty while work is left, however many ask at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marlin.accounts.models import ApiToken
from marlin.audit.actions import verify_chain
from marlin.review import queue
from marlin.review.models import Claim, Judgment, JudgmentStatus
from tests.review.factories import make_comparison, make_project

DRAFT = {
    "ratings": {"correctness": -2, "security": None, "reliability": -1, "maintainability": 0},
    "overall": -2,
    "rationale": "A handles the empty ledger; B raises KeyError on it.",
    "confidence": 4,
}


def _headers(user) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "hot path")
    return {"Authorization": f"Bearer {raw}"}


def _statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements sent, without the savepoints that the test's own transaction adds."""
    return [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]


@pytest.fixture
def open_work(db, make_user):
    project = make_project(overlap=2, min_rationale_chars=20)
    comparisons = [make_comparison(project) for _ in range(3)]
    # Someone took work first: the audit chain has its head, as on any server in use.
    queue.next_comparison(make_user("bea", "annotator"))
    return comparisons


def test_next_claims_with_the_update_the_claim_row_and_the_audit_event(alice, open_work):
    # What the API's token check has loaded by then: the roles and the expert's profile.
    alice.role_names()
    assert not hasattr(alice, "expert_profile")
    with CaptureQueriesContext(connection) as queries:
        taken = queue.next_comparison(alice)
    assert taken is not None
    statements = _statements(queries)
    assert len(statements) <= 5, "\n".join(statements)
    assert statements[0].lstrip().startswith("UPDATE") and "slots_taken + 1" in statements[0]
    assert queue.recount_slots() == []


def test_the_hot_path_query_counts(client, alice, open_work, django_assert_max_num_queries) -> None:
    headers = _headers(alice)
    client.get("/api/comparisons", headers=headers)  # the token's use is written once a minute
    # next: the token (with the user's roles and profile), the claim (UPDATE, claim row, 3 for
    # the audit event), then the payload: the comparison (with the rubric's newest criteria and
    # whether they judged it: a fresh claim has no judgment to read), both candidates, their
    # checks; two savepoints.
    with django_assert_max_num_queries(11):
        taken = client.post("/api/comparisons/next", headers=headers)
    assert taken.status_code == 200, taken.content
    public_id = taken.json()["public_id"]
    # GET: the token, the comparison, the candidates, their checks (no judgment yet: not read).
    with django_assert_max_num_queries(4):
        shown = client.get(f"/api/comparisons/{public_id}", headers=headers)
    assert shown.status_code == 200 and shown.json()["my_judgment"] is None
    url = f"/api/comparisons/{public_id}/judgment"
    first = client.put(
        url, DRAFT | {"draft_revision": 0}, content_type="application/json", headers=headers
    )
    assert first.status_code == 200, first.content
    # A save: the token (and roles), the judgment, one UPDATE (and its savepoint pair).
    with django_assert_max_num_queries(5):
        saved = client.put(
            url,
            DRAFT | {"draft_revision": 1, "rationale": DRAFT["rationale"] + " More."},
            content_type="application/json",
            headers=headers,
        )
    assert saved.status_code == 200, saved.content
    assert saved.json()["draft_revision"] == 2
    assert saved.json()["rationale"].endswith("More.")
    with django_assert_max_num_queries(13):
        submitted = client.post(url + "/submit", headers=headers)
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["status"] == "submitted"
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.status == JudgmentStatus.SUBMITTED and judgment.draft_revision == 2
    assert not Claim.objects.filter(annotator=alice, released_at__isnull=True).exists()
    assert queue.recount_slots() == []
    assert verify_chain() is None


def test_a_stale_save_is_a_409_and_changes_nothing(client, alice, open_work):
    headers = _headers(alice)
    public_id = client.post("/api/comparisons/next", headers=headers).json()["public_id"]
    url = f"/api/comparisons/{public_id}/judgment"
    body = DRAFT | {"draft_revision": 0}
    assert (
        client.put(url, body, content_type="application/json", headers=headers).status_code == 200
    )
    stale = client.put(
        url, body | {"rationale": "Older tab."}, content_type="application/json", headers=headers
    )
    assert stale.status_code == 409
    assert Judgment.objects.get(annotator=alice).rationale == DRAFT["rationale"]


def _ask_at_once(clients: list[tuple[Client, dict[str, str]]]) -> list[object]:
    """Every annotator posts `next` at the same moment, each in its own thread (and database
    connection); returns each one's public id, or the response when it was not a 200."""
    barrier = threading.Barrier(len(clients))
    results: list[object] = [None] * len(clients)

    def ask(index: int) -> None:
        browser, headers = clients[index]
        try:
            barrier.wait(timeout=60)
            response = browser.post("/api/comparisons/next", headers=headers)
            results[index] = (
                response.json()["public_id"] if response.status_code == 200 else response
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_fifty_annotators_asking_at_once_get_fifty_different_comparisons(make_user):
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    project = make_project(overlap=1)
    comparisons = {make_comparison(project).public_id for _ in range(50)}
    annotators = [make_user(f"ann{i}", "annotator") for i in range(50)]
    clients = [(Client(), _headers(user)) for user in annotators]
    results = _ask_at_once(clients)
    # Nobody was told the queue is empty while work was left, and nobody shares one.
    assert all(isinstance(result, str) for result in results), [
        r for r in results if not isinstance(r, str)
    ]
    assert set(results) == comparisons
    late = Client().post("/api/comparisons/next", headers=_headers(make_user("late", "annotator")))
    assert late.status_code == 404 and "queue is empty" in late.json()["detail"]
    assert Claim.objects.filter(released_at__isnull=True).count() == 50
    assert queue.recount_slots() == []
    assert verify_chain() is None


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_with_overlap_two_every_place_is_taken_once_and_none_twice(make_user):
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    project = make_project(overlap=2)
    for _ in range(25):
        make_comparison(project)
    annotators = [make_user(f"ann{i}", "annotator") for i in range(50)]
    results = _ask_at_once([(Client(), _headers(user)) for user in annotators])
    assert all(isinstance(result, str) for result in results), results
    taken: dict[str, int] = {}
    for public_id in results:
        taken[public_id] = taken.get(public_id, 0) + 1  # type: ignore[index]
    assert len(taken) == 25 and set(taken.values()) == {2}
    assert queue.recount_slots() == []
