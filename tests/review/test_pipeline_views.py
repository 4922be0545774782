"""The pipeline's pages, through the Django test client posting the real forms."""

from __future__ import annotations

import logging
import re

import pytest

from marlin.accounts.models import Earning
from marlin.review.models import ComparisonState, Decision, JudgmentStatus
from marlin.tasks.actions import do_revise_rubric
from marlin.tasks.rubric import DEFAULT_CRITERIA
from tests.review.factories import make_comparison, make_project, submitted_judgment

CRITERIA = ("correctness", "security", "reliability", "maintainability")


@pytest.fixture
def anna(make_user):
    return make_user("anna", "annotator")


@pytest.fixture
def brian(make_user):
    return make_user("brian", "reviewer")


def review_form(
    verdict: str = "agree", reason: str = "The ratings match the diff.", **disagree: str
) -> dict[str, str]:
    form = {"verdict": verdict, "reason": reason}
    for key in CRITERIA:
        form[f"agree-{key}"] = "disagree" if key in disagree else "agree"
        form[f"reason-{key}"] = disagree.get(key, "")
    return form


def in_review(alice, anna, overalls=(-1, -1), project=None):
    comparison = make_comparison(
        project=project, agents=("Claude-Secret-Agent", "GPT-Hidden-Agent")
    )
    first = submitted_judgment(comparison, alice, overalls[0])
    second = submitted_judgment(comparison, anna, overalls[1])
    return comparison, first, second


def test_the_queue_lists_judgments_needing_review_but_never_your_own_or_a_comparison_you_judged(
    client, make_user, alice, anna, brian
) -> None:
    both = make_user("rita", "annotator", "reviewer")
    comparison, first, second = in_review(alice, anna)
    mine = make_comparison()
    submitted_judgment(mine, both, -1)
    submitted_judgment(mine, alice, -1)
    client.force_login(both)
    page = client.get("/review/queue/").content.decode()
    assert f"/review/{comparison.public_id}/judgments/{first.pk}/" in page
    assert f"/review/{comparison.public_id}/judgments/{second.pk}/" in page
    assert mine.public_id not in page
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    page = client.get("/review/queue/").content.decode()
    assert (
        f"judgments/{first.pk}/" not in page
    )  # already reviewed by rita, and it has its one review
    client.force_login(brian)
    page = client.get("/review/queue/").content.decode()
    assert f"judgments/{first.pk}/" not in page and f"judgments/{second.pk}/" in page


def test_reviewers_see_the_comparison_blind(client, alice, anna, bob) -> None:
    comparison, first, _ = in_review(alice, anna)
    client.force_login(bob)
    page = client.get(f"/review/{comparison.public_id}/judgments/{first.pk}/").content.decode()
    assert "Side A" in page and "Side B" in page
    assert "Claude-Secret-Agent" not in page and "GPT-Hidden-Agent" not in page
    assert "variant 1" in page and "variant 2" in page  # both diffs are there
    assert "alice" not in page  # reviewers_see_annotator is off by default


def test_the_annotator_name_is_shown_when_the_project_allows_it(client, alice, anna, bob) -> None:
    comparison, first, _ = in_review(
        alice, anna, project=make_project(reviewers_see_annotator=True)
    )
    client.force_login(bob)
    page = client.get(f"/review/{comparison.public_id}/judgments/{first.pk}/").content.decode()
    assert "<dt>Annotator</dt><dd>alice</dd>" in page


def test_a_review_without_a_reason_for_a_disagreement_is_refused_and_keeps_the_input(
    client, alice, anna, bob
) -> None:
    comparison, first, _ = in_review(alice, anna)
    client.force_login(bob)
    form = review_form("disagree", reason="Security is wrong.", security="")
    response = client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", form)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Say why you disagree on Security." in page
    assert "Security is wrong." in page
    assert not first.reviews.exists()


def test_reviewing_your_own_judgment_is_forbidden(client, make_user, anna, caplog) -> None:
    both = make_user("rita", "annotator", "reviewer")
    comparison, first, _ = in_review(both, anna)
    client.force_login(both)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.post(
            f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form()
        )
    assert response.status_code == 403
    # A styled page with the reason, and no traceback in the log for an everyday refusal.
    assert "You may not do this" in response.content.decode()
    assert all(record.exc_info is None for record in caplog.records)
    assert not first.reviews.exists()


def test_a_revision_request_shows_its_comments_to_the_annotator(client, alice, anna, bob) -> None:
    comparison, first, _ = in_review(alice, anna)
    client.force_login(bob)
    response = client.post(
        f"/review/{comparison.public_id}/judgments/{first.pk}/",
        review_form("revision", reason="Mention the failing hidden test in your rationale."),
    )
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == JudgmentStatus.REVISION_REQUESTED
    client.force_login(alice)
    page = client.get("/review/revisions/").content.decode()
    assert "Mention the failing hidden test in your rationale." in page
    assert f"/compare/{comparison.public_id}/" in page
    assert "bob" not in page


def test_adjudication_pages_need_the_role_and_show_every_judgment_and_review(
    client, alice, anna, bob, brian, carol
) -> None:
    comparison, first, second = in_review(alice, anna, overalls=(-2, 2))
    client.force_login(bob)
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    client.force_login(brian)
    client.post(
        f"/review/{comparison.public_id}/judgments/{second.pk}/",
        review_form("disagree", reason="B breaks callers.", correctness="B fails the hidden test."),
    )
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    assert client.get("/review/adjudicate/").status_code == 403
    assert client.get(f"/review/{comparison.public_id}/adjudicate/").status_code == 403
    client.force_login(carol)
    assert comparison.public_id in client.get("/review/adjudicate/").content.decode()
    page = client.get(f"/review/{comparison.public_id}/adjudicate/").content.decode()
    assert "by alice" in page and "by anna" in page
    assert "B fails the hidden test." in page and "B breaks callers." in page
    assert "overall preferences point different ways (A vs B)" in page


def test_the_timeline_is_for_admins_and_adjudicators_and_reveals_agents_only_after_the_decision(
    client, alice, anna, bob, brian, carol, erin
) -> None:
    comparison, first, second = in_review(alice, anna)
    client.force_login(bob)
    assert client.get(f"/review/{comparison.public_id}/timeline/").status_code == 403
    client.force_login(erin)
    page = client.get(f"/review/{comparison.public_id}/timeline/").content.decode()
    assert "comparison.start_review" in page and "Claude-Secret-Agent 1" not in page
    client.force_login(bob)
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    client.force_login(brian)
    client.post(f"/review/{comparison.public_id}/judgments/{second.pk}/", review_form())
    client.force_login(erin)
    page = client.get(f"/review/{comparison.public_id}/timeline/").content.decode()
    assert "<dt>Side A</dt><dd>Claude-Secret-Agent 1</dd>" in page
    client.force_login(carol)
    assert (
        "Claude-Secret-Agent 1"
        not in client.get(f"/review/{comparison.public_id}/decision/").content.decode()
    )
    client.force_login(alice)
    assert (
        "Claude-Secret-Agent 1"
        not in client.get(f"/review/{comparison.public_id}/decision/").content.decode()
    )


def test_experts_see_the_agents_after_the_decision_when_the_project_reveals_them(
    client, alice, anna, bob, brian, mallory
) -> None:
    comparison, first, second = in_review(
        alice, anna, project=make_project(reveal_agents_to_experts_after_decision=True)
    )
    client.force_login(alice)
    page = client.get(f"/review/{comparison.public_id}/decision/").content.decode()
    assert "Claude-Secret-Agent 1" not in page
    assert "shown here once the comparison is decided" in page and anna.pseudonym not in page
    client.force_login(bob)
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    client.force_login(brian)
    client.post(f"/review/{comparison.public_id}/judgments/{second.pk}/", review_form())
    client.force_login(alice)
    page = client.get(f"/review/{comparison.public_id}/decision/").content.decode()
    assert "<dt>Side A</dt><dd>Claude-Secret-Agent 1</dd>" in page
    assert (
        anna.pseudonym in page and "<td>alice</td>" in page
    )  # others by pseudonym, yourself by name
    client.force_login(mallory)
    assert client.get(f"/review/{comparison.public_id}/decision/").status_code == 403


def test_voiding_through_the_timeline_needs_a_reason_and_pays_nobody(
    client, alice, anna, bob, carol
) -> None:
    comparison, first, _ = in_review(alice, anna)
    client.force_login(bob)
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    client.force_login(carol)
    response = client.post(f"/review/{comparison.public_id}/void/", {"reason": ""}, follow=True)
    assert "Say why the comparison is voided" in response.content.decode()
    response = client.post(
        f"/review/{comparison.public_id}/void/",
        {"reason": "Side B's candidate is empty."},
        follow=True,
    )
    assert "Comparison voided" in response.content.decode()
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.VOIDED
    assert Earning.objects.count() == 0
    response = client.post(
        f"/review/{comparison.public_id}/void/", {"reason": "again"}, follow=True
    )
    assert "already voided" in response.content.decode()


def test_rereview_from_the_dashboard_is_admin_only(client, erin, bob, alice, anna) -> None:
    project = make_project()
    client.force_login(bob)
    assert client.post(f"/review/projects/{project.pk}/rereview/").status_code == 403
    client.force_login(erin)
    response = client.post(f"/review/projects/{project.pk}/rereview/", follow=True)
    assert "does not ask for re-review" in response.content.decode()
    project.rereview_on_rubric_change = True
    project.save()
    page = client.get("/account/earnings/dashboard/").content.decode()
    assert f"<td>{project.name}</td><td>0</td>" in page  # nothing stale: no button
    response = client.post(f"/review/projects/{project.pk}/rereview/", follow=True)
    assert "0 comparison(s) sent back to review" in response.content.decode()
    in_review(alice, anna, project=project)
    criteria = [dict(c) for c in DEFAULT_CRITERIA]
    criteria[1]["guidance"] += " Check new dependencies too."
    do_revise_rubric(erin, project.rubric, criteria, note="Dependencies are a security matter.")
    page = client.get("/account/earnings/dashboard/").content.decode()
    assert (
        f"<td>{project.name}</td><td>2</td>" in page
        and f"/review/projects/{project.pk}/rereview/" in page
    )
    response = client.post(f"/review/projects/{project.pk}/rereview/", follow=True)
    assert "1 comparison(s) sent back to review" in response.content.decode()


def test_a_revision_request_needs_only_comments_and_an_agreement_needs_every_criterion(
    client, alice, anna, bob
) -> None:
    comparison, first, second = in_review(alice, anna)
    client.force_login(bob)
    response = client.post(
        f"/review/{comparison.public_id}/judgments/{first.pk}/",
        {"verdict": "agree", "reason": "Looks right."},
    )
    assert response.status_code == 400
    page = response.content.decode()
    for name in ("Correctness", "Security", "Reliability", "Maintainability"):
        assert f"Agree or disagree on {name}." in page
    assert ">Looks right.</textarea>" in page
    assert re.search(r'name="verdict" value="agree" required checked', page)
    response = client.post(
        f"/review/{comparison.public_id}/judgments/{second.pk}/",
        {"verdict": "revision", "reason": "Rate security: the patch adds eval()."},
    )
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.status == JudgmentStatus.REVISION_REQUESTED


def test_a_reviewer_who_judged_the_comparison_is_refused_before_seeing_the_form(
    client, make_user, anna
) -> None:
    rita = make_user("rita", "annotator", "reviewer")
    comparison, own, other = in_review(rita, anna)
    client.force_login(rita)
    for judgment in (own, other):
        response = client.get(f"/review/{comparison.public_id}/judgments/{judgment.pk}/")
        assert response.status_code == 403
    assert not own.reviews.exists() and not other.reviews.exists()


def disputed(alice, anna, bob, brian, client):
    comparison, first, second = in_review(alice, anna, overalls=(-2, 2))
    client.force_login(bob)
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    client.force_login(brian)
    client.post(f"/review/{comparison.public_id}/judgments/{second.pk}/", review_form())
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    return comparison


def test_an_adjudication_with_bad_input_is_marked_per_field_and_keeps_what_was_chosen(
    client, alice, anna, bob, brian, carol
) -> None:
    comparison = disputed(alice, anna, bob, brian, client)
    client.force_login(carol)
    url = f"/review/{comparison.public_id}/adjudicate/"
    form = {
        "rating-correctness": "-2",
        "rating-security": "na",
        "rating-reliability": "5",
        "overall": "",
        "rationale": "Too short.",
    }
    response = client.post(url, form)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Reliability: &#x27;5&#x27; is not on the 7-point scale (-3 to 3)." in page
    assert "Decide Maintainability (or mark it not applicable)." in page
    assert "Choose the overall decision (A much better … B much better)." in page
    assert "The rationale is too short: 10 of at least 20 characters." in page
    # The same A3 … B3 control as the annotator's, with what was chosen still chosen.
    assert re.search(r'name="rating-correctness" value="-2" aria-label="[^"]*" checked', page)
    assert re.search(r'name="rating-security" value="na" aria-label="[^"]*" checked', page)
    assert ">Too short.</textarea>" in page
    assert not Decision.objects.filter(comparison=comparison).exists()
    form |= {
        "rating-reliability": "-1",
        "rating-maintainability": "0",
        "overall": "-2",
        "rationale": "A handles the empty ledger; B raises on it.",
    }
    assert client.post(url, form).status_code == 302
    decision = Decision.objects.get(comparison=comparison)
    assert decision.overall == -2
    assert decision.ratings == {
        "correctness": -2,
        "security": None,
        "reliability": -1,
        "maintainability": 0,
    }


def test_an_adjudicator_who_judged_the_comparison_is_refused_before_seeing_the_form(
    client, make_user, anna, bob, brian
) -> None:
    ada = make_user("ada", "annotator", "adjudicator")
    comparison = disputed(ada, anna, bob, brian, client)
    client.force_login(ada)
    response = client.get(f"/review/{comparison.public_id}/adjudicate/")
    assert response.status_code == 403
    assert not Decision.objects.filter(comparison=comparison).exists()


def test_a_reviewer_who_disagrees_may_give_their_own_rating_with_the_same_control(
    client, alice, anna, bob, brian, carol
) -> None:
    comparison, first, second = in_review(alice, anna, overalls=(-2, 2))
    client.force_login(bob)
    page = client.get(f"/review/{comparison.public_id}/judgments/{first.pk}/").content.decode()
    assert 'aria-label="Your rating on Correctness: B slightly better"' in page
    client.post(f"/review/{comparison.public_id}/judgments/{first.pk}/", review_form())
    client.force_login(brian)
    form = review_form("disagree", reason="B breaks callers.", correctness="B fails the test.")
    form["rating-correctness"] = "-3"
    form["rating-security"] = "2"  # ignored: brian agrees on security
    response = client.post(f"/review/{comparison.public_id}/judgments/{second.pk}/", form)
    assert response.status_code == 302
    review = second.reviews.get()
    assert review.per_criterion["correctness"] == {
        "agree": False,
        "reason": "B fails the test.",
        "rating": -3,
    }
    assert "rating" not in review.per_criterion["security"]
    client.force_login(carol)
    page = client.get(f"/review/{comparison.public_id}/adjudicate/").content.decode()
    assert "B fails the test. (would rate" in page and 'title="-3">A much better' in page
