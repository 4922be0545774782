import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from marlin.audit.actions import record, verify_chain
from marlin.audit.models import AppendOnlyError, AuditEvent
from marlin.tasks.actions import do_create_project, do_revise_rubric
from marlin.tasks.rubric import DEFAULT_CRITERIA


@pytest.fixture
def some_events(erin):
    project = do_create_project(erin, "Audit test")
    criteria = [dict(c) for c in DEFAULT_CRITERIA]
    criteria[0]["guidance"] = "Stricter guidance for correctness."
    do_revise_rubric(erin, project.rubric, criteria, note="Sharper correctness guidance.")
    return list(AuditEvent.objects.order_by("sequence"))


def test_each_change_writes_one_chained_event(some_events):
    verbs = [event.verb for event in some_events]
    assert verbs == ["rubric.create", "project.create", "rubric.revise"]
    for before, after in zip(some_events, some_events[1:], strict=False):
        assert after.prev_hash == before.hash
        assert after.sequence == before.sequence + 1
    assert verify_chain() is None


def test_verify_reports_an_event_changed_with_raw_sql(some_events, capsys):
    tampered = some_events[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["quietly edited", tampered.pk]
        )
    with pytest.raises(CommandError, match=f"event #{tampered.sequence}"):
        call_command("audit", "verify")
    assert "content does not match its hash" in capsys.readouterr().err


def test_verify_reports_a_deleted_event(some_events):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [some_events[1].pk])
    broken = verify_chain()
    assert broken is not None
    assert broken.sequence == some_events[2].sequence
    assert "missing" in broken.problem


def test_verify_passes_on_an_untouched_chain(some_events, capsys):
    call_command("audit", "verify")
    assert "3 events verified" in capsys.readouterr().out


def test_the_orm_refuses_to_change_or_delete_events(some_events):
    event = some_events[0]
    event.reason = "rewrite history"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_record_must_run_inside_the_changes_transaction(erin):
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        record(erin, "test.verb", object_type="thing", object_id=1)
    with transaction.atomic():
        event = record(erin, "test.verb", object_type="thing", object_id=1, reason="why")
    assert event.actor_name == "erin" and event.reason == "why"


def test_admins_see_and_filter_the_audit_page_and_others_are_refused(
    some_events, client_for, erin, alice
):
    response = client_for(erin).get("/audit/", {"verb": "rubric.revise"})
    assert response.status_code == 200
    assert b"Sharper correctness guidance." in response.content
    assert b"project.create" not in response.content.split(b"<table")[1]
    assert client_for(alice).get("/audit/").status_code == 403
