"""Issue 11, finding 7 (its payroll part): payroll CSV cells that start with = + - @ (or a tab
or carriage return) were written as they are, so a spreadsheet ran them as formulas. The export
is downloaded by an admin through the payroll page; the usernames come from people."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from marlin.accounts.models import Earning
from marlin.review import pay
from tests.review.factories import make_project


@pytest.mark.django_db
def test_the_payroll_export_cannot_run_spreadsheet_formulas(make_user, erin, client_for):
    project = make_project()
    names = ["=1+cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "plain"]
    for n, name in enumerate(names):
        user = make_user(name, "annotator")
        Earning.objects.create(
            user=user,
            project=project,
            kind="judgment",
            source_type="test",
            source_id=str(n),
            amount_cents=2500,
            created_at=datetime(2026, 11, 3, tzinfo=UTC),
        )
        if name == "plain":
            pay.do_adjust_earning(erin, user, -3000, "Overpaid last month.", project=project)
    Earning.objects.filter(kind="adjustment").update(created_at=datetime(2026, 11, 4, tzinfo=UTC))
    response = client_for(erin).get("/account/earnings/payroll.csv?period=2026-11")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))[1:]
    users = {row[0] for row in rows}
    assert users == {
        "'=1+cmd|' /C calc'!A0",
        "'+1+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "plain",
    }
    # Numbers Marlin writes stay numbers, a negative total too.
    assert [row[4] for row in rows if row[0] == "plain"] == ["-5.00"]
    assert all(not row[1].startswith("'") for row in rows)
