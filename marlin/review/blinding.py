"""Who may learn which agent was on which side, and what would give it away.

Annotators and reviewers only ever see a comparison's ``public_id`` and the letters A and B.
After a comparison is decided, admins may see the agents behind the letters, and so may the
experts who worked on it when the project's ``reveal_agents_to_experts_after_decision`` says so.
``identity_strings`` lists what must never appear in what a blinded user receives (tests and
audits search responses for it).
"""

from __future__ import annotations

from marlin.accounts.models import User
from marlin.agents.models import Candidate, Turn
from marlin.review.models import Comparison, ComparisonState


def side_of(comparison: Comparison, run_id: int) -> str:
    """The letter a run is shown as in this comparison."""
    if run_id == comparison.run_a_id:
        return "A"
    if run_id == comparison.run_b_id:
        return "B"
    raise ValueError("That run is not part of this comparison.")


def may_reveal(user: User, comparison: Comparison) -> bool:
    if comparison.state != ComparisonState.DECIDED:
        return False
    if user.has_role("admin"):
        return True
    if not comparison.project.reveal_agents_to_experts_after_decision:
        return False
    worked_on = (
        comparison.judgments.filter(annotator=user).exists()
        or comparison.judgments.filter(reviews__reviewer=user).exists()
    )
    return worked_on or user.has_role("adjudicator")


def revealed_agents(user: User, comparison: Comparison) -> dict[str, str] | None:
    """``{"A": "agent 1", "B": "agent 2"}`` for users allowed to know, else None."""
    if not may_reveal(user, comparison):
        return None
    return {"A": str(comparison.run_a.agent), "B": str(comparison.run_b.agent)}


def identity_strings(comparison: Comparison) -> list[str]:
    """Names and ids that would identify the agents, runs, turns or candidates behind a
    comparison: none of them may reach a blinded user."""
    values: set[str] = set()
    for run in (comparison.run_a, comparison.run_b):
        values |= {str(run.pk), str(run.agent_id), run.agent.name, str(run.agent)}
        model = (run.agent.settings or {}).get("model")
        if isinstance(model, str) and model:
            values.add(model)
    turns = Turn.objects.filter(run_id__in=[comparison.run_a_id, comparison.run_b_id])
    values |= {str(pk) for pk in turns.values_list("pk", flat=True)}
    candidates = Candidate.objects.filter(turn__in=turns)
    values |= {str(pk) for pk in candidates.values_list("pk", flat=True)}
    return sorted(v for v in values if v)
