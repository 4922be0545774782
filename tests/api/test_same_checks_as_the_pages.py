"""The JSON API and the web pages check drafts and reviews with the same forms: the same input
is refused by both, with the same messages, and the same good input is accepted by both."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from marlin.review import queue
from marlin.review.models import Judgment, Review
from tests.review.factories import make_comparison, make_project, submitted_judgment

BAD_COMMENT = [{"side": "C", "file": "ledger.py", "line_side": "new", "line": 3, "text": "x"}]


@pytest.fixture
def two_held(alice, make_user):
    """Two comparisons alice claimed: one for the page, one for the API."""
    project = make_project(overlap=1)
    first, second = make_comparison(project), make_comparison(project)
    assert queue.claim(alice, first) is not None and queue.claim(alice, second) is not None
    return first, second


@pytest.mark.parametrize(
    ("form", "body"),
    [
        ({"rating-correctness": "9"}, {"ratings": {"correctness": 9}}),
        ({"overall": "-4"}, {"overall": -4}),
        ({"confidence": "9"}, {"confidence": 9}),
        ({"comments": json.dumps(BAD_COMMENT)}, {"comments": BAD_COMMENT}),
        ({"turn_note-1": "x" * 5001}, {"turn_notes": {"1": "x" * 5001}}),
        (
            {"rating-security": "7", "overall": "4", "confidence": "0"},
            {"ratings": {"security": 7}, "overall": 4, "confidence": 0},
        ),
    ],
)
def test_a_draft_the_page_refuses_the_api_refuses_with_the_same_message(
    alice, client_for, token_for, client, two_held, form: dict[str, str], body: dict[str, Any]
):
    on_page, on_api = two_held
    page = client_for(alice).post(
        f"/compare/{on_page.public_id}/draft/", {"draft_revision": "0", **form}
    )
    api = client.put(
        f"/api/comparisons/{on_api.public_id}/judgment",
        {"draft_revision": 0, **body},
        content_type="application/json",
        headers=token_for(alice),
    )
    assert (page.status_code, api.status_code) == (400, 422)
    assert page.json()["error"] == api.json()["detail"]
    assert not Judgment.objects.filter(annotator=alice).exists()


def test_a_draft_the_page_accepts_the_api_accepts_alike(
    alice, client_for, token_for, client, two_held
):
    on_page, on_api = two_held
    comment = {"side": "B", "file": "ledger.py", "line_side": "new", "line": 3, "text": "None?"}
    page = client_for(alice).post(
        f"/compare/{on_page.public_id}/draft/",
        {
            "draft_revision": "0",
            "rating-correctness": "-2",
            "rating-security": "na",
            "overall": "1",
            "confidence": "3",
            "comments": json.dumps([comment]),
            "turn_note-1": "one turn",
            "rationale": "kept as typed ",
        },
    )
    api = client.put(
        f"/api/comparisons/{on_api.public_id}/judgment",
        {
            "draft_revision": 0,
            "ratings": {"correctness": -2, "security": None},
            "overall": 1,
            "confidence": 3,
            "comments": [comment],
            "turn_notes": {"1": "one turn"},
            "rationale": "kept as typed ",
        },
        content_type="application/json",
        headers=token_for(alice),
    )
    assert (page.status_code, api.status_code) == (200, 200)
    fields = ("ratings", "overall", "confidence", "comments", "turn_notes", "rationale")
    saved = [
        {name: getattr(j, name) for name in fields}
        for j in (
            Judgment.objects.get(comparison=on_page, annotator=alice),
            Judgment.objects.get(comparison=on_api, annotator=alice),
        )
    ]
    assert saved[0] == saved[1]
    assert saved[0]["ratings"] == {"correctness": -2, "security": None}


@pytest.fixture
def two_in_review(alice, make_user):
    """Two comparisons in review, each with alice's and anna's submitted judgments."""
    anna = make_user("anna", "annotator")
    out = []
    for _ in range(2):
        comparison = make_comparison(make_project())
        submitted_judgment(comparison, alice, -1)
        submitted_judgment(comparison, anna, -1)
        out.append(Judgment.objects.get(comparison=comparison, annotator=alice))
    return out


def _page_errors(page: str) -> list[str]:
    return [
        html.unescape(m) for m in re.findall(r'<p class="error" role="alert">([^<]*)</p>', page)
    ]


@pytest.mark.parametrize(
    ("form", "body"),
    [
        # Agreeing needs every criterion, and a reason for each disagreement.
        (
            {"verdict": "agree", "reason": "ok", "agree-correctness": "agree"},
            {"verdict": "agree", "reason": "ok", "per_criterion": {"correctness": {"agree": True}}},
        ),
        (
            {
                "verdict": "disagree",
                "reason": "B is better",
                "agree-correctness": "disagree",
                "agree-security": "agree",
                "agree-reliability": "agree",
                "agree-maintainability": "agree",
            },
            {
                "verdict": "disagree",
                "reason": "B is better",
                "per_criterion": {
                    "correctness": {"agree": False, "reason": " "},
                    "security": {"agree": True},
                    "reliability": {"agree": True},
                    "maintainability": {"agree": True},
                },
            },
        ),
        ({"verdict": "maybe", "reason": "hm"}, {"verdict": "maybe", "reason": "hm"}),
        ({"verdict": "revision", "reason": "  "}, {"verdict": "revision", "reason": "  "}),
    ],
)
def test_a_review_the_page_refuses_the_api_refuses_with_the_same_messages(
    bob, client_for, token_for, client, two_in_review, form, body
):
    on_page, on_api = two_in_review
    page = client_for(bob).post(
        f"/review/{on_page.comparison.public_id}/judgments/{on_page.pk}/", form
    )
    api = client.post(
        "/api/reviews",
        {"judgment_id": on_api.pk, **body},
        content_type="application/json",
        headers=token_for(bob),
    )
    assert (page.status_code, api.status_code) == (400, 422)
    messages = _page_errors(page.content.decode())
    assert messages and " ".join(messages) == api.json()["detail"]
    assert not Review.objects.exists()


def test_a_review_the_page_accepts_the_api_accepts_alike(
    bob, client_for, token_for, client, two_in_review
):
    on_page, on_api = two_in_review
    keys = ("correctness", "security", "reliability", "maintainability")
    form = {"verdict": "disagree", "reason": "B breaks callers."}
    form |= {f"agree-{key}": "agree" for key in keys}
    form |= {"agree-security": "disagree", "reason-security": "eval() on input"}
    page = client_for(bob).post(
        f"/review/{on_page.comparison.public_id}/judgments/{on_page.pk}/", form
    )
    per_criterion: dict[str, Any] = {key: {"agree": True} for key in keys}
    per_criterion["security"] = {"agree": False, "reason": "eval() on input"}
    api = client.post(
        "/api/reviews",
        {
            "judgment_id": on_api.pk,
            "verdict": "disagree",
            "reason": "B breaks callers.",
            "per_criterion": per_criterion,
        },
        content_type="application/json",
        headers=token_for(bob),
    )
    assert (page.status_code, api.status_code) == (302, 201)
    reviews = [Review.objects.get(judgment=j) for j in (on_page, on_api)]
    assert reviews[0].per_criterion == reviews[1].per_criterion
    assert reviews[0].per_criterion["security"] == {"agree": False, "reason": "eval() on input"}
    assert reviews[0].per_criterion["correctness"] == {"agree": True, "reason": ""}
