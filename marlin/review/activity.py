"""Time measured by the server: heartbeats and the work sessions they add up to.

A page (or an API client) sends a heartbeat while its user is active: focused, typing,
scrolling. The server stamps each one with its own clock; the client sends no time at all.
Active time is the sum of the intervals between consecutive heartbeats (the submission counts
as the last one) that are at most ``MARLIN_ACTIVITY_GAP_SECONDS`` (default 60) apart, so it can
never exceed the wall time from a session's first heartbeat (the server-recorded open) to the
submission that closes it.

A heartbeat is one UPDATE of the person's open session (``beat``); only the first heartbeat of a
session, which must pass the permission checks of the work it measures, writes more. The checks
live with the work (``actions.do_judgment_heartbeat``, ``pipeline.do_review_heartbeat`` and
``pipeline.do_adjudication_heartbeat``); submitting closes the session (``close``) and the time is
stored on the judgment, review or decision, then named in its Earning's evidence.

Heartbeats are not audited one by one (there are thousands per hour); what they add up to is, in
the submission's event and in the pay event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse

from marlin.accounts.models import User
from marlin.review.models import Comparison, WorkKind, WorkSession

# The page sends a heartbeat this often while its user is active: a quarter of the gap, so one
# lost heartbeat never splits an active stretch, and no more than every 15 s.
MAX_HEARTBEAT_SECONDS = 15


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms(moment: datetime) -> int:
    """A timezone-aware datetime as epoch milliseconds (the sessions' clock)."""
    return int(moment.timestamp() * 1000)


def gap_seconds() -> int:
    return max(1, int(settings.ACTIVITY_GAP_SECONDS))


def heartbeat_seconds() -> int:
    """How often a page sends heartbeats while its user is active."""
    return max(1, min(MAX_HEARTBEAT_SECONDS, gap_seconds() // 4))


def page_settings(user: User, work: str, subject: int | str, **data: object) -> dict[str, object]:
    """What a page's activity.js needs to send heartbeats (review/_activity.html): the API's
    heartbeat URL, the kind of work, what it is on, how often, and a ticket for them."""
    return {
        "url": reverse("api:heartbeat"),
        "work": work,
        "interval": heartbeat_seconds(),
        "ticket": issue_ticket(user, work, subject),
        **data,
    }


# Heartbeat tickets --------------------------------------------------------------------------
# Most of a heartbeat's cost was not the heartbeat: it was loading the session and the user
# (benchmarks/heartbeats.py). A page therefore gets a signed ticket naming the person and the
# work, and sends it with its heartbeats. A ticket only ever counts heartbeats on a session that
# is already open: opening one (the first heartbeat, and after a submission) needs the login and
# the work's checks, so a ticket cannot start anything, and a forged one is refused.
TICKET_SALT = "marlin.review.activity.ticket"
TICKET_MAX_AGE = 12 * 3600


@dataclass(frozen=True)
class Ticket:
    user_id: int
    kind: str
    subject: int | str  # the judgment's id (a review) or the comparison's public id


def issue_ticket(user: User, kind: str, subject: int | str) -> str:
    return signing.dumps([user.pk, kind, subject], salt=TICKET_SALT)


def read_ticket(text: str) -> Ticket | None:
    """The ticket if the server signed it in the last 12 hours, else None."""
    try:
        user_id, kind, subject = signing.loads(text, salt=TICKET_SALT, max_age=TICKET_MAX_AGE)
    except (signing.BadSignature, TypeError, ValueError):
        return None
    if not isinstance(user_id, int) or kind not in WorkKind.values:
        return None
    if not isinstance(subject, (int, str)) or isinstance(subject, bool):
        return None
    return Ticket(user_id, kind, subject)


def do_ticket_heartbeat(ticket: Ticket) -> bool:
    """Count a heartbeat on the ticket's open session; False when none is open (then the page
    sends it with its login, which opens one after the work's checks). The UPDATE is the whole
    transaction: on PostgreSQL it goes with its lazy commit in one round trip (statements sent
    together run as one transaction), elsewhere it commits on its own."""
    sql, params = _beat_statement(ticket.user_id, ticket.kind, ticket.subject, now_ms())
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        sql = f"{sql}; {_LAZY_COMMIT}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount > 0


def _open(user_id: int, kind: str, subject_id: int) -> Q:
    return Q(user_id=user_id, kind=kind, subject_id=subject_id, closed_ms__isnull=True)


# A heartbeat is this one statement, written out rather than built by the ORM each time:
# building the CASE expressions cost more CPU than the database spends running them
# (benchmarks/heartbeats.py). Every SET expression reads the row as it was before the UPDATE,
# so both CASEs compare the old ``last_seen_ms``. CASE rather than GREATEST: SQLite has none.
_BEAT = """
UPDATE {table} SET
    active_ms = CASE WHEN last_seen_ms < %(at)s AND last_seen_ms >= %(since)s
        THEN active_ms + (%(at)s - last_seen_ms) ELSE active_ms END,
    intervals = CASE WHEN last_seen_ms < %(at)s AND last_seen_ms >= %(since)s
        THEN intervals + 1 ELSE intervals END,
    heartbeats = heartbeats + 1,
    last_seen_ms = CASE WHEN last_seen_ms < %(at)s THEN %(at)s ELSE last_seen_ms END
WHERE user_id = %(user)s AND kind = %(kind)s AND subject_id = {subject} AND closed_ms IS NULL
"""
# A comparison named by its public id (what pages and the API send) needs no lookup first.
_BY_PUBLIC_ID = "(SELECT id FROM {comparisons} WHERE public_id = %(subject)s)"


def _beat_statement(
    user_id: int, kind: str, subject_id: int | str, at_ms: int
) -> tuple[str, dict[str, int | str]]:
    params: dict[str, int | str] = {
        "at": at_ms,
        "since": at_ms - gap_seconds() * 1000,
        "user": user_id,
        "kind": kind,
        "subject": subject_id,
    }
    subject = "%(subject)s"
    if isinstance(subject_id, str):
        subject = _BY_PUBLIC_ID.format(
            comparisons=connection.ops.quote_name(Comparison._meta.db_table)
        )
    table = connection.ops.quote_name(WorkSession._meta.db_table)
    return _BEAT.format(table=table, subject=subject), params


# The heartbeat's transaction does not wait for the WAL flush (PostgreSQL's asynchronous commit,
# for that transaction only): a server crash may lose the last fraction of a second of
# heartbeats, which is that much uncounted time and never an inconsistency, and a heartbeat no
# longer waits for a disk write. SQLite in WAL mode with synchronous=NORMAL does not flush at
# commit anyway.
_LAZY_COMMIT = "SET LOCAL synchronous_commit TO OFF"


def beat(
    user_id: int, kind: str, subject_id: int | str, *, at_ms: int, lazy_commit: bool = True
) -> bool:
    """Count a heartbeat on the open session: one UPDATE. The interval since the previous
    heartbeat counts when it is positive and no longer than the gap. A heartbeat that arrives
    out of order counts nothing and never moves ``last_seen_ms`` back. Return False when there
    is no open session. ``subject_id`` may be a comparison's public id (judgments and
    adjudications work on a comparison). Call it first in the heartbeat's transaction: when
    it counts, the rest of that transaction is heartbeat bookkeeping, committed lazily unless
    told not to."""
    sql, params = _beat_statement(user_id, kind, subject_id, at_ms)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counted = cursor.rowcount > 0
        postgres = connection.vendor == "postgresql"
        if counted and lazy_commit and postgres and connection.in_atomic_block:
            cursor.execute(_LAZY_COMMIT)
    return counted


def open_session(
    user: User, kind: str, comparison: Comparison, subject_id: int, *, at_ms: int
) -> None:
    """Open a session at this heartbeat (the caller checked that the user may do the work). Two
    first heartbeats at once: the second counts on the session the first opened."""
    try:
        with transaction.atomic():
            WorkSession.objects.create(
                user=user,
                kind=kind,
                comparison=comparison,
                subject_id=subject_id,
                opened_ms=at_ms,
                last_seen_ms=at_ms,
            )
    except IntegrityError:
        beat(user.pk, kind, subject_id, at_ms=at_ms, lazy_commit=False)


@dataclass(frozen=True)
class WorkTime:
    """Server-measured time of one piece of work, from its closed sessions."""

    sessions: tuple[int, ...] = ()
    active_seconds: int = 0
    wall_seconds: int = 0
    heartbeats: int = 0
    intervals: int = 0

    def as_dict(self) -> dict[str, int | list[int]]:
        """For audit events and evidence."""
        return {
            "sessions": list(self.sessions),
            "active_seconds": self.active_seconds,
            "wall_seconds": self.wall_seconds,
            "heartbeats": self.heartbeats,
            "intervals": self.intervals,
        }

    def __add__(self, other: WorkTime) -> WorkTime:
        return WorkTime(
            self.sessions + other.sessions,
            self.active_seconds + other.active_seconds,
            self.wall_seconds + other.wall_seconds,
            self.heartbeats + other.heartbeats,
            self.intervals + other.intervals,
        )


def _time_of(session: WorkSession, end_ms: int) -> WorkTime:
    wall_ms = max(0, end_ms - session.opened_ms)
    return WorkTime(
        (session.pk,),
        # Never more than the wall time from the server-recorded open to the end.
        min(session.active_ms, wall_ms) // 1000,
        wall_ms // 1000,
        session.heartbeats,
        session.intervals,
    )


def close(user: User, kind: str, subject_id: int, *, work_id: int, at_ms: int) -> WorkTime:
    """Close the user's open session on this work (inside the submission's transaction) and
    return its time; no session (no heartbeat was ever sent) is no time. The submission is the
    session's last heartbeat: the interval up to it counts like any other. The row is locked so
    a heartbeat racing the submission either lands before it or finds the session closed."""
    session = WorkSession.objects.select_for_update().filter(_open(user.pk, kind, subject_id))
    found = session.first()
    if found is None:
        return WorkTime()
    since_last = at_ms - found.last_seen_ms
    if 0 < since_last <= gap_seconds() * 1000:
        found.active_ms += since_last
        found.intervals += 1
    found.heartbeats += 1
    found.last_seen_ms = max(found.last_seen_ms, at_ms)
    found.closed_ms = at_ms
    found.work_id = work_id
    found.save(
        update_fields=[
            "active_ms",
            "intervals",
            "heartbeats",
            "last_seen_ms",
            "closed_ms",
            "work_id",
        ]
    )
    return _time_of(found, at_ms)


def time_of_work(kind: str, work_id: int) -> WorkTime:
    """The time every closed session of this judgment, review or decision added up to (what
    its Earning's evidence names)."""
    total = WorkTime()
    for session in WorkSession.objects.filter(kind=kind, work_id=work_id).order_by("pk"):
        total += _time_of(session, session.closed_ms or session.last_seen_ms)
    return total


def open_active_seconds(user: User, kind: str, subject_id: int) -> int:
    """Active seconds counted so far on the open session (for the page; reads only)."""
    session = WorkSession.objects.filter(_open(user.pk, kind, subject_id)).first()
    return 0 if session is None else session.active_ms // 1000
