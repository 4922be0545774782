"""Pay that can be reconciled: every Earning names its evidence, the decision's audit event
carries the amount and the evidence, `marlin pay verify` recomputes each project's pay from the
audit log and names every row that disagrees."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from marlin.accounts.models import Earning, EarningEvidence, ExpertProfile
from marlin.audit.models import AuditEvent
from marlin.review import pay, pipeline
from marlin.review.models import Decision, Review, WorkSession
from tests.review.factories import (
    adjudicating,
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


@pytest.fixture
def decided(alice, anna, bob, brian, carol):
    """An hourly project (anna has her own rate) with one comparison decided by agreement and
    one by adjudication; every piece of work took server-measured time."""
    project = make_project(pay_mode="hourly", hourly_rate_cents=6000)
    ExpertProfile.objects.create(user=anna, hourly_rate_cents=9000)
    for overalls in ((-1, -1), (-2, 2)):
        comparison = make_comparison(project=project)
        judgments = [
            submitted_judgment(comparison, alice, overalls[0], active_seconds=1800),
            submitted_judgment(comparison, anna, overalls[1], active_seconds=1201),
        ]
        for reviewer, judgment in zip((bob, brian), judgments, strict=True):
            reviewing(reviewer, judgment, 90)
            pipeline.do_review(
                reviewer,
                judgment,
                verdict="agree",
                reason="ok",
                per_criterion=agree_all(comparison),
            )
    adjudicating(carol, comparison, 300)
    pipeline.do_adjudicate(carol, comparison, overall=-1, ratings=FULL, rationale="x" * 40)
    return project


def verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("pay", "verify", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def verify_fails(*args: str) -> str:
    err = io.StringIO()
    with pytest.raises(CommandError, match="does not reconcile") as failure:
        call_command("pay", "verify", *args, stdout=io.StringIO(), stderr=err)
    return err.getvalue() + str(failure.value)


@pytest.mark.django_db
def test_each_earning_names_the_evidence_it_was_computed_from(decided, anna, carol):
    earning = Earning.objects.get(user=anna, kind="judgment")
    evidence = EarningEvidence.model_validate(earning.evidence)
    judgment = anna.judgments.get(status="accepted")
    assert evidence.work == "judgment" and evidence.work_id == judgment.pk
    assert evidence.comparison == judgment.comparison.public_id
    assert (evidence.pay_mode, evidence.rate_cents, evidence.rate_from) == (
        "hourly",
        9000,
        "expert",
    )
    assert evidence.rubric_version == 1 and evidence.active_seconds == 1201
    session = WorkSession.objects.get(kind="judgment", work_id=judgment.pk)
    assert evidence.sessions == [session.pk]
    assert (evidence.heartbeats, evidence.intervals) == (session.heartbeats, session.intervals)
    assert evidence.intervals >= 1201 // 30 and evidence.wall_seconds >= 1201
    assert earning.amount_cents == evidence.amount_cents() == 3003  # 1201 s at $90/h, half up

    adjudication = EarningEvidence.model_validate(
        Earning.objects.get(user=carol, kind="adjudication").evidence
    )
    decision = Decision.objects.get(decided_by=carol)
    assert (adjudication.work, adjudication.work_id) == ("adjudication", decision.pk)
    assert adjudication.active_seconds == decision.active_seconds == 300
    review = Review.objects.filter(reviewer__username="bob").first()
    assert (
        EarningEvidence.model_validate(
            Earning.objects.get(source_id=str(review.pk), kind="review").evidence
        ).active_seconds
        == review.active_seconds
        == 90
    )


@pytest.mark.django_db
def test_the_decisions_audit_event_carries_every_amount_and_its_evidence(decided):
    for earning in Earning.objects.exclude(kind="adjustment"):
        logged = [
            entry
            for event in AuditEvent.objects.filter(
                project_id=decided.pk, verb__in=["comparison.decided", "comparison.adjudicated"]
            )
            for entry in event.new_values["earnings"]
            if entry["earning"] == earning.pk
        ]
        assert len(logged) == 1
        assert logged[0]["amount_cents"] == earning.amount_cents
        assert logged[0]["evidence"] == earning.evidence


@pytest.mark.django_db
def test_pay_verify_agrees_with_an_untouched_ledger_adjustments_included(decided, alice, erin):
    earning = Earning.objects.filter(user=alice).first()
    pay.do_adjust_earning(erin, earning, -700, "Rationale copied from another judgment.")
    out, err = verify()
    total = pay.money(sum(Earning.objects.values_list("amount_cents", flat=True)))
    # 4 earnings for the agreed comparison, 4 for the adjudicated one (anna's judgment there
    # was rejected), and the adjustment.
    assert f"ledger {total}, audit log {total}, 9 earnings: OK" in out
    assert "Pay OK: 9 earnings in 1 project(s)" in out and not err
    call_command("audit", "verify", stdout=io.StringIO())  # the chain and the pay agree


@pytest.mark.django_db
def test_pay_verify_names_an_amount_raised_in_the_database(decided, alice):
    earning = Earning.objects.filter(user=alice, kind="judgment", amount_cents=3000).first()
    Earning.objects.filter(pk=earning.pk).update(amount_cents=1_008_000)
    report = verify_fails()
    assert f"earning #{earning.pk} (alice, judgment" in report
    assert "the audit log (event #" in report and "pays alice 3000 c" in report
    assert "MISMATCH" in report
    # `marlin audit verify` says it too: the chain holds, the ledger does not match it.
    err = io.StringIO()
    with pytest.raises(CommandError, match="the ledger says 1015103 c, the audit log 10103 c"):
        call_command("audit", "verify", stdout=io.StringIO(), stderr=err)
    assert f"earning #{earning.pk} (alice, judgment" in err.getvalue()


@pytest.mark.django_db
def test_pay_verify_names_evidence_changed_to_match_a_raised_amount(decided, bob):
    earning = Earning.objects.filter(user=bob).first()
    evidence = earning.evidence | {"active_seconds": 604800}
    forged = EarningEvidence.model_validate(evidence).amount_cents()
    Earning.objects.filter(pk=earning.pk).update(evidence=evidence, amount_cents=forged)
    report = verify_fails()
    assert f"earning #{earning.pk} (bob, review" in report
    assert "its evidence differs from the evidence in audit event" in report


@pytest.mark.django_db
def test_pay_verify_names_earnings_added_or_deleted_behind_the_logs_back(decided, alice, anna):
    gone = Earning.objects.get(user=anna, kind="judgment")
    Earning.objects.filter(pk=gone.pk).delete()
    extra = Earning.objects.create(
        user=alice,
        project=decided,
        kind="judgment",
        source_type="review.judgment",
        source_id="999999",
        amount_cents=50_000,
        created_at=datetime(2026, 11, 3, tzinfo=UTC),
    )
    report = verify_fails("--project", str(decided.pk))
    assert f"earning #{extra.pk} (alice, judgment, review.judgment:999999, 50000 c)" in report
    assert "has no pay event in the audit log" in report
    assert f"pays earning #{gone.pk} (anna, judgment, 3003 c), which is not in the ledger" in report


@pytest.mark.django_db
def test_pay_verify_refuses_an_unknown_project():
    with pytest.raises(CommandError, match="No project with id 424242"):
        verify("--project", "424242")
