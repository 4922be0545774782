"""What the statistics decide about comparisons waiting in the queue: their order (priority),
their weak label, and triage's routing. The numbers come from marlin/analytics/queue_order.py
(run by the worker's periodic sweep); this module only writes them.

- **Priority** orders the annotators' queue within a project (the claim's ORDER BY, highest
  first). It is derived data, rewritten at every refresh, so it is not audited row by row.
- **Weak label**: what the checks say about the outcome, for reviewers and staff only (never an
  annotator before their judgment, ``may_see_weak_label``). Derived too, not audited.
- **Routing** (triage, a project policy) changes what a comparison needs: one annotator and no
  review, or the project's overlap and reviews. That is a decision about the workflow, so it is
  audited (``comparison.routed``, with the weak label it used and why) and made at most once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from django.db import transaction

from marlin.accounts.models import User
from marlin.audit.actions import record
from marlin.review.models import (
    EDITABLE_STATUSES,
    Claim,
    Comparison,
    ComparisonState,
    Routing,
)

# Who may see the weak label and the routing reason (it would anchor an annotator's judgment).
WEAK_LABEL_ROLES = ("admin", "author", "adjudicator", "reviewer")


class WeakLabel(TypedDict):
    """``Comparison.weak_label``: the label model's probabilities for the sides as shown."""

    a: float  # P(the decision prefers side A)
    b: float
    tie: float
    votes: list[str]  # what fired, e.g. "hidden tests: one side resolves them, the other not: A"
    decided: int  # decided comparisons the label model learnt from


def may_see_weak_label(user: User, comparison: Comparison) -> bool:
    """Reviewers, adjudicators, authors and admins; never an annotator who is working on the
    comparison (an open claim or a judgment still editable), whatever their other roles."""
    if not user.has_role(*WEAK_LABEL_ROLES):
        return False
    working = (
        Claim.objects.filter(
            comparison=comparison, annotator_id=user.pk, released_at__isnull=True
        ).exists()
        or comparison.judgments.filter(annotator_id=user.pk, status__in=EDITABLE_STATUSES).exists()
    )
    return not working


def set_priorities(rows: Iterable[tuple[int, float, str]]) -> int:
    """Store (comparison id, priority, note) rows; return how many rows were written. Small
    transactions, so a claim waits on a refreshed row for a moment at most."""
    batch = [
        Comparison(pk=pk, priority=priority, priority_note=note[:300])
        for pk, priority, note in rows
    ]
    for start in range(0, len(batch), 500):
        with transaction.atomic():
            Comparison.objects.bulk_update(
                batch[start : start + 500], ["priority", "priority_note"]
            )
    return len(batch)


def set_weak_labels(labels: dict[int, WeakLabel]) -> int:
    batch = [Comparison(pk=pk, weak_label=dict(label)) for pk, label in labels.items()]
    for start in range(0, len(batch), 500):
        with transaction.atomic():
            Comparison.objects.bulk_update(batch[start : start + 500], ["weak_label"])
    return len(batch)


def release_pending(project_id: int) -> int:
    """Triage was switched off: comparisons waiting to be routed go back to the queue as they
    are (the project's overlap and reviews). Nothing was decided about them, so no audit."""
    return Comparison.objects.filter(project_id=project_id, routing=Routing.PENDING).update(
        routing=Routing.NONE
    )


@transaction.atomic
def do_route(
    comparison_id: int, routing: str, reason: str, weak_label: WeakLabel | None
) -> Comparison | None:
    """Route a comparison waiting for judgments, once: ``single`` (one annotator, no review) or
    ``full``. A comparison someone already took or judged is routed ``full`` whatever was asked
    (its places may be taken already). Returns None when it is no longer waiting or was routed.
    """
    if routing not in (Routing.SINGLE, Routing.FULL):
        raise ValueError(f"routing must be single or full; got {routing!r}")
    comparison = (
        Comparison.objects.select_for_update(of=("self",), no_key=True)
        .filter(
            pk=comparison_id,
            state=ComparisonState.AWAITING_JUDGMENTS,
            routing__in=(Routing.NONE, Routing.PENDING),
        )
        .first()
    )
    if comparison is None:
        return None
    old = comparison.routing
    if routing == Routing.SINGLE and (comparison.slots_taken or comparison.judgments.exists()):
        routing = Routing.FULL
        reason = "annotators had taken it before its checks finished; " + reason
    comparison.routing = routing
    comparison.routing_reason = reason
    comparison.weak_label = dict(weak_label) if weak_label is not None else None
    comparison.save(update_fields=["routing", "routing_reason", "weak_label", "updated_at"])
    new: dict[str, Any] = {"routing": routing, "weak_label": comparison.weak_label}
    record(None, "comparison.routed", comparison, old={"routing": old}, new=new, reason=reason)
    return comparison


def weak_label_context(user: User, comparison: Comparison) -> dict[str, Any]:
    """What the review pages show of the weak label and the routing, for those who may see it
    (nothing at all for the others: not even that there is one)."""
    if not may_see_weak_label(user, comparison):
        return {}
    label = comparison.weak_label
    return {
        "weak_label": {
            "a": f"{label['a']:.0%}",
            "b": f"{label['b']:.0%}",
            "tie": f"{label['tie']:.0%}",
            "votes": label.get("votes", []),
            "decided": label.get("decided", 0),
        }
        if label
        else None,
        "routing": comparison.get_routing_display() if comparison.routing else "",
        "routing_reason": comparison.routing_reason,
        "show_weak_label": True,
    }
