"""Pay: hourly and per-item amounts, adjustments, payroll per month, the dashboard, the pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from marlin.accounts.models import Earning, ExpertProfile
from marlin.audit.models import AuditEvent
from marlin.review import pay as earnings
from marlin.review import pipeline
from tests.review.factories import (
    agree_all,
    make_comparison,
    make_project,
    reviewing,
    submitted_judgment,
)

FULL = {"correctness": -1, "security": None, "reliability": 0, "maintainability": 0}


@pytest.fixture
def anna(make_user):
    return make_user("anna", "annotator")


@pytest.fixture
def brian(make_user):
    return make_user("brian", "reviewer")


def settle(comparison, annotators, reviewers, overalls, *, seconds=(600, 600)):
    """Judgments that took `seconds` of active time (heartbeats), each reviewed in 90 s."""
    judgments = [
        submitted_judgment(comparison, a, o, active_seconds=s)
        for a, o, s in zip(annotators, overalls, seconds, strict=True)
    ]
    for reviewer, judgment in zip(reviewers, judgments, strict=True):
        reviewing(reviewer, judgment, 90)
        pipeline.do_review(
            reviewer, judgment, verdict="agree", reason="ok", per_criterion=agree_all(comparison)
        )
    return judgments


def test_hourly_pay_uses_active_time_and_the_experts_own_rate(alice, anna, bob, brian) -> None:
    project = make_project(pay_mode="hourly", hourly_rate_cents=6000)
    ExpertProfile.objects.create(user=anna, hourly_rate_cents=9000)
    settle(
        make_comparison(project=project),
        (alice, anna),
        (bob, brian),
        (-1, -1),
        seconds=(1800, 1201),
    )
    paid = dict(
        Earning.objects.filter(kind="judgment").values_list("user__username", "amount_cents")
    )
    assert paid == {"alice": 3000, "anna": 3003}  # 1201 s at $90/h is 3002.5 c, rounded half up
    reviews = sorted(
        Earning.objects.filter(kind="review").values_list("amount_cents", "active_seconds")
    )
    assert reviews == [(150, 90), (150, 90)]


def test_paying_twice_returns_the_same_earning(alice, anna, bob, brian) -> None:
    comparison = make_comparison()
    first, _ = settle(comparison, (alice, anna), (bob, brian), (-1, -1))
    first.refresh_from_db()
    again = earnings.pay_judgment(first)
    assert Earning.objects.filter(kind="judgment", user=alice).count() == 1
    assert again.amount_cents == 2500


def test_an_adjustment_needs_an_admin_and_a_reason_and_is_audited(
    alice, anna, bob, brian, erin
) -> None:
    comparison = make_comparison()
    settle(comparison, (alice, anna), (bob, brian), (-1, -1))
    earning = Earning.objects.get(user=alice, kind="judgment")
    with pytest.raises(PermissionDenied):
        earnings.do_adjust_earning(bob, earning, 500, "bonus")
    with pytest.raises(ValidationError, match="A reason is required"):
        earnings.do_adjust_earning(erin, earning, 500, " ")
    with pytest.raises(ValidationError, match="non-zero amount"):
        earnings.do_adjust_earning(erin, earning, 0, "nothing")
    with pytest.raises(ValidationError, match="Choose the project"):
        earnings.do_adjust_earning(erin, alice, 100, "travel")
    adjustment = earnings.do_adjust_earning(
        erin, earning, -700, "Rationale copied from another judgment."
    )
    assert (adjustment.kind, adjustment.adjusts, adjustment.user, adjustment.created_by) == (
        "adjustment",
        earning,
        alice,
        erin,
    )
    event = AuditEvent.objects.get(verb="earning.adjust")
    assert event.new_values == {"user": "alice", "amount_cents": -700, "adjusts": earning.pk}
    assert event.reason == "Rationale copied from another judgment."
    earnings.do_adjust_earning(
        erin, alice, 300, "Second adjustment for the same person.", project=comparison.project
    )
    assert earnings.summarise(Earning.objects.filter(user=alice)).total_cents == 2500 - 700 + 300


def test_payroll_is_per_month_and_counts_adjustments_in_the_total_only(alice, bob, erin) -> None:
    project = make_project()

    def paid(user, kind, cents, seconds, when, source):
        Earning.objects.create(
            user=user,
            project=project,
            kind=kind,
            source_type="test",
            source_id=source,
            amount_cents=cents,
            active_seconds=seconds,
            created_at=when,
        )

    paid(alice, "judgment", 2500, 1800, datetime(2026, 11, 3, tzinfo=UTC), "1")
    paid(alice, "judgment", 2500, 2700, datetime(2026, 11, 30, 23, 59, tzinfo=UTC), "2")
    paid(alice, "judgment", 2500, 900, datetime(2026, 12, 1, tzinfo=UTC), "3")
    paid(bob, "review", 800, 360, datetime(2026, 11, 10, tzinfo=UTC), "4")
    paid(alice, "adjustment", -500, 0, datetime(2026, 11, 12, tzinfo=UTC), "")
    rows = earnings.payroll_rows("2026-11")
    assert [(r.user, r.items, r.active_hours, r.total) for r in rows] == [
        ("alice", 2, "1.25", "45.00"),
        ("bob", 1, "0.10", "8.00"),
    ]
    assert rows[0].pseudonym == alice.pseudonym
    assert earnings.payroll_csv(rows) == (
        "user,pseudonym,items,active_hours,total\n"
        f"alice,{alice.pseudonym},2,1.25,45.00\n"
        f"bob,{bob.pseudonym},1,0.10,8.00\n"
    )
    assert [(r.user, r.total) for r in earnings.payroll_rows("2026-12")] == [("alice", "25.00")]
    with pytest.raises(ValueError, match="not a month like 2026-11"):
        earnings.parse_period("November")


def test_the_dashboard_shows_throughput_time_agreement_and_cost(
    alice, anna, bob, brian, carol
) -> None:
    project = make_project()
    settle(
        make_comparison(project=project), (alice, anna), (bob, brian), (-1, -1), seconds=(600, 1200)
    )
    disputed = make_comparison(project=project)
    settle(disputed, (alice, anna), (bob, brian), (-1, 1), seconds=(300, 900))
    pipeline.do_adjudicate(
        carol, disputed, overall=-1, ratings=FULL, rationale="A is correct on the empty ledger."
    )
    figures = earnings.dashboard(project=project, days=7)
    assert figures.decided == 2
    assert figures.agreement_rate == 0.5
    assert figures.median_active_minutes == 12.5  # median of 5, 10, 15, 20 minutes
    # agreed: 2 judgments + 2 reviews = 6600; adjudicated: 1 judgment + 2 reviews + 1500 = 5600
    assert figures.cost_per_decided_cents == (6600 + 5600) // 2
    assert figures.throughput[-1][1] == 2 and sum(n for _, n in figures.throughput) == 2
    assert len(figures.throughput) == 7
    empty = earnings.dashboard(project=make_project(), days=3)
    assert (
        empty.decided,
        empty.agreement_rate,
        empty.cost_per_decided_cents,
        empty.median_active_minutes,
    ) == (0, None, None, None)


def test_experts_see_only_their_own_earnings_and_admins_see_anyones(
    client, alice, anna, bob, brian, erin
) -> None:
    settle(make_comparison(), (alice, anna), (bob, brian), (-1, -1))
    client.force_login(alice)
    page = client.get("/account/earnings/").content.decode()
    assert '<dd class="total">$25.00</dd>' in page and "Judgment accepted" in page
    # The evidence behind the amount: the server's heartbeats (21 and the submission), the rate.
    assert "600 s <small" in page and "measured by the server: 22 heartbeats" in page
    assert "$25.00 <small" in page and "at $25.00</small>" in page
    assert client.get("/account/earnings/?user=bob").status_code == 404
    assert client.get("/account/earnings/payroll.csv").status_code == 403
    assert client.get("/account/earnings/dashboard/").status_code == 403
    assert client.get("/account/earnings/?period=soon").status_code == 404
    client.force_login(erin)
    page = client.get("/account/earnings/?user=bob").content.decode()
    assert '<dd class="total">$8.00</dd>' in page
    csv = client.get(f"/account/earnings/payroll.csv?period={earnings.current_period()}")
    assert csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines()[1].startswith("alice,expert-")
    assert client.get("/account/earnings/dashboard/").status_code == 200


def test_admins_adjust_through_the_page(client, alice, anna, bob, brian, erin) -> None:
    comparison = make_comparison()
    settle(comparison, (alice, anna), (bob, brian), (-1, -1))
    client.force_login(erin)
    response = client.post(
        "/account/earnings/adjust/",
        {"user": "alice", "amount_cents": "250", "project": comparison.project_id, "reason": ""},
        follow=True,
    )
    assert "A reason is required" in response.content.decode()
    response = client.post(
        "/account/earnings/adjust/",
        {
            "user": "alice",
            "amount_cents": "250",
            "project": comparison.project_id,
            "reason": "Long task.",
        },
        follow=True,
    )
    assert '<dd class="total">$27.50</dd>' in response.content.decode()
    client.force_login(bob)
    assert (
        client.post(
            "/account/earnings/adjust/", {"user": "bob", "amount_cents": "99999", "reason": "me"}
        ).status_code
        == 403
    )
