"""Audit events are chained when their transaction commits (marlin.audit.chain): the chain head
is locked for the insert and the commit only, events of a rolled back savepoint or transaction
never reach the log, and the chain's order is the order in which transactions committed."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from marlin.accounts.models import User
from marlin.audit.actions import record, verify_chain
from marlin.audit.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def _verbs() -> list[str]:
    return list(AuditEvent.objects.order_by("sequence").values_list("verb", flat=True))


def test_a_savepoint_rolled_back_drops_its_events_and_the_rest_commit_chained(erin):
    with transaction.atomic():
        first = record(erin, "test.first", object_type="thing", object_id=1)
        with pytest.raises(Boom), transaction.atomic():
            record(erin, "test.undone", object_type="thing", object_id=2)
            raise Boom
        last = record(erin, "test.last", object_type="thing", object_id=3)
    assert _verbs() == ["test.first", "test.last"]
    assert (first.sequence, last.sequence) == (1, 2)
    assert last.prev_hash == first.hash
    assert AuditChainHead.objects.get().last_sequence == 2
    assert verify_chain() is None


def test_a_transaction_rolled_back_leaves_no_event_and_the_head_where_it_was(erin):
    with transaction.atomic():
        record(erin, "test.kept", object_type="thing", object_id=1)
    with pytest.raises(Boom), transaction.atomic():
        record(erin, "test.undone", object_type="thing", object_id=2)
        raise Boom
    with transaction.atomic():
        record(erin, "test.after", object_type="thing", object_id=3)
    assert _verbs() == ["test.kept", "test.after"]
    assert AuditChainHead.objects.get().last_sequence == 2
    assert verify_chain() is None


def test_events_are_written_when_their_transaction_commits(erin):
    with transaction.atomic():
        event = record(erin, "test.one", object_type="thing", object_id=1)
        record(erin, "test.two", object_type="thing", object_id=1)
        # Not in the log yet: the transaction does not see its own events before it commits.
        assert AuditEvent.objects.count() == 0 and event.pk is None
    assert _verbs() == ["test.one", "test.two"]
    assert event.pk is not None and event.sequence == 1
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash


def test_a_commit_that_fails_takes_the_change_and_its_events_with_it(erin):
    # Foreign keys are checked when the transaction commits, after the events were sealed.
    ghost = User(pk=987654, username="ghost")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="newcomer")
        record(erin, "test.change", object_type="thing", object_id=1)
        record(ghost, "test.by_nobody", object_type="thing", object_id=2)
    assert _verbs() == [] and not User.objects.filter(username="newcomer").exists()
    with transaction.atomic():
        record(erin, "test.after", object_type="thing", object_id=3)
    assert _verbs() == ["test.after"]
    assert AuditEvent.objects.get().sequence == 1
    assert verify_chain() is None


@pytest.mark.postgres
def test_an_open_audited_transaction_does_not_hold_up_another(erin):
    """Before, the first transaction's record() locked the head until it committed and the
    second one waited for it; now the second commits first and comes first in the chain."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer at a time in; PostgreSQL shows the lock")
    recorded, other_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_action() -> None:
        try:
            with transaction.atomic():
                record(erin, "test.slow", object_type="thing", object_id=1)
                recorded.set()
                # The rest of a long action: the other transaction must get through meanwhile.
                if not other_done.wait(timeout=30):
                    raise AssertionError("the other audited transaction waited for this one")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def quick_action() -> None:
        try:
            recorded.wait(timeout=30)
            with transaction.atomic():
                record(erin, "test.quick", object_type="thing", object_id=2)
            other_done.set()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=slow_action), threading.Thread(target=quick_action)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert _verbs() == ["test.quick", "test.slow"]
    assert verify_chain() is None
