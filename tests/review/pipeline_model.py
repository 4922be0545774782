"""A plain-Python model of one comparison going through the review pipeline, as docs/workflow.md
describes it, for the state-machine test (tests/review/test_pipeline_properties.py).

Each action method updates the model the way the application should update the database and
returns the audit verbs the action should write, or raises `Refused` with the exception the
action should raise. The test runs the real action after asking the model and compares the two.
Ratings are kept simple: every judgment rates every criterion like its overall preference, so
the agreement rule reduces to the overall values and the decision's ratings to its overall.
Time: the test sends heartbeats that each count exactly the seconds asked for (see
test_pipeline_properties.ReviewPipeline.spend); the model adds them to the person's open work
session and hands the total to the judgment, review or decision that closes it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations

from django.core.exceptions import PermissionDenied, ValidationError

from marlin.errors import IllegalTransition
from marlin.review.actions import JudgmentClosed, NotAssigned, StaleDraft
from marlin.review.models import Judgment

LIVE = {"submitted", "revision_requested", "accepted", "rejected"}
SLOT = {"submitted", "revision_requested", "accepted"}  # queue.SLOT_STATUSES
EDITABLE = {"draft", "revision_requested"}


class Refused(Exception):
    """The action must raise `kind`, having written only `verbs` (a claim made again before the
    refusing transaction started)."""

    def __init__(self, kind: type[Exception], verbs: list[str] | None = None) -> None:
        super().__init__(kind.__name__)
        self.kind, self.verbs = kind, verbs or []


def direction(value: int) -> int:
    return (value > 0) - (value < 0)


def median_toward_a_tie(values: list[int]) -> int:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    total = ordered[middle - 1] + ordered[middle]
    return direction(total) * (abs(total) // 2)


@dataclass
class Policy:
    overlap: int
    reviewers_per_judgment: int
    max_steps: int
    rereview_on_rubric_change: bool
    hourly: bool
    per_item_cents: dict[str, int]  # judgment, review, adjudication
    hourly_rate_cents: dict[str, int]  # "project", and the people with their own rate


@dataclass
class JudgmentModel:
    version: int
    pk: int | None = None  # set once the row exists
    status: str = "draft"
    revision: int = 0
    overall: int | None = None
    complete: bool = False
    active_seconds: int = 0


@dataclass
class ReviewModel:
    judgment: str  # the annotator's name: one judgment per annotator
    reviewer: str
    verdict: str  # as stored: agree, disagree or revision
    objects: bool  # disagrees overall or on a criterion
    superseded: bool
    active_seconds: int
    pk: int | None = None


@dataclass
class DecisionModel:
    source: str
    overall: int
    decided_by: str | None
    active_seconds: int


@dataclass
class PipelineModel:
    policy: Policy
    roles: dict[str, tuple[str, ...]]
    state: str = "awaiting_judgments"
    version: int = 1
    claims: set[str] = field(default_factory=set)
    judgments: dict[str, JudgmentModel] = field(default_factory=dict)
    reviews: list[ReviewModel] = field(default_factory=list)
    decision: DecisionModel | None = None
    # Open work sessions, (kind, person[, judgment's annotator]) -> active seconds so far.
    sessions: dict[tuple[str, ...], int] = field(default_factory=dict)

    # Questions ---------------------------------------------------------------------------

    def may(self, name: str, *roles: str) -> bool:
        return bool({"admin", *roles} & set(self.roles[name]))

    def used_slots(self) -> int:
        judged = {name for name, j in self.judgments.items() if j.status in SLOT}
        return len(judged | self.claims)

    def free_slot(self) -> bool:
        return self.used_slots() < self.policy.overlap

    def live(self) -> dict[str, JudgmentModel]:
        return {name: j for name, j in self.judgments.items() if j.status in LIVE}

    def active_reviews(self, owner: str) -> list[ReviewModel]:
        return [r for r in self.reviews if r.judgment == owner and not r.superseded]

    def needs_review(self, owner: str) -> bool:
        judgment = self.judgments[owner]
        return (
            judgment.status == "submitted"
            and len(self.active_reviews(owner)) < self.policy.reviewers_per_judgment
        )

    def waits_for_someone(self) -> bool:
        """In review, some judgment needs a review or a revision (else nobody can move it)."""
        return any(
            j.status == "revision_requested" or self.needs_review(name)
            for name, j in self.live().items()
        )

    def next_piece_of_work(self, name: str) -> tuple[str, ...] | None:
        """What `name` would usefully do next, if anything: judge, resubmit, review a judgment
        or adjudicate."""
        judgment = self.judgments.get(name)
        if self.may(name, "annotator") and self.state == "awaiting_judgments":
            mine = name in self.claims or self.free_slot()
            if mine and (judgment is None or judgment.status == "draft"):
                return ("judge",)
        if judgment is not None and judgment.status == "revision_requested":
            return ("resubmit",)
        if judgment is not None:
            return None  # judged it: may neither review nor adjudicate it
        if self.may(name, "reviewer") and self.state == "in_review":
            for owner in self.live():
                done = {r.reviewer for r in self.active_reviews(owner)}
                if self.needs_review(owner) and name not in done:
                    return ("review", owner)
        if self.may(name, "adjudicator") and self.state == "disputed":
            return ("adjudicate",)
        return None

    def earnings(self, decision_pk: int | None) -> Counter:
        """(user, kind, source id, cents, active seconds) for every Earning the decision should
        have created."""
        owed: Counter = Counter()
        if self.decision is None:
            return owed
        work: list[tuple[str, str, int | None, int]] = [
            (name, "judgment", j.pk, j.active_seconds)
            for name, j in self.judgments.items()
            if j.status == "accepted"
        ]
        # Every review is paid, superseded ones too.
        work += [(r.reviewer, "review", r.pk, r.active_seconds) for r in self.reviews]
        by = self.decision.decided_by
        if self.decision.source == "adjudication" and by is not None:
            work.append((by, "adjudication", decision_pk, self.decision.active_seconds))
        for name, kind, pk, seconds in work:
            owed[(name, kind, str(pk), self.pay(name, kind, seconds), seconds)] += 1
        return owed

    def pay(self, name: str, kind: str, active_seconds: int) -> int:
        """Per item, or active time at the person's own hourly rate (else the project's),
        rounded half up to the cent."""
        if self.policy.hourly:
            rates = self.policy.hourly_rate_cents
            return (active_seconds * rates.get(name, rates["project"]) + 1800) // 3600
        return self.policy.per_item_cents[kind]

    # The annotators' actions ----------------------------------------------------------------

    def next_comparison(self, who: str) -> list[str]:
        """queue.next_comparison: the held comparison, or a new claim while a place is free."""
        if not self.may(who, "annotator"):
            raise Refused(PermissionDenied)
        if self.state != "awaiting_judgments" or who in self.claims:
            return []
        if who not in self.judgments and self.free_slot():
            self.claims.add(who)
            return ["comparison.claimed"]
        return []

    def handed_out(self, who: str) -> bool:
        return self.state == "awaiting_judgments" and who in self.claims

    def _assigned(self, who: str) -> list[str]:
        """actions.ensure_assigned; a draft whose claim expired is claimed again if a place is
        free."""
        judgment = self.judgments.get(who)
        if judgment is not None and judgment.status != "draft":
            return []
        if self.state != "awaiting_judgments":
            raise Refused(NotAssigned)
        if who in self.claims:
            return []
        if judgment is not None and self.free_slot():
            self.claims.add(who)
            return ["comparison.claimed"]
        raise Refused(NotAssigned)

    def start(self, who: str) -> list[str]:
        """do_start_judgment: a new draft on the current rubric version (or the existing one)."""
        if not self.may(who, "annotator"):
            raise Refused(PermissionDenied)
        verbs = self._assigned(who)
        if who in self.judgments:
            return verbs
        self.judgments[who] = JudgmentModel(version=self.version)
        return [*verbs, "judgment.started"]

    def save(self, owner: str, overall: int | None, complete: bool, *, stale: bool) -> list[str]:
        """do_save_draft by the judgment's annotator; `stale` when the tab is on another
        revision than the server's."""
        judgment = self.judgments[owner]
        verbs = self._assigned(owner)
        if judgment.status not in EDITABLE:
            raise Refused(JudgmentClosed, verbs)
        if stale:
            raise Refused(StaleDraft, verbs)
        # do_save_draft audits a save that changes the verdict: the first (nothing was rated
        # before) and any that moves the preference (every criterion is rated `overall`).
        if judgment.revision == 0 or judgment.overall != overall:
            verbs = [*verbs, "judgment.draft_verdict"]
        judgment.revision += 1
        judgment.overall = overall
        judgment.complete = complete and overall is not None
        return verbs

    def submit(self, owner: str) -> list[str]:
        """do_submit_judgment by the judgment's annotator, after saving the form."""
        judgment = self.judgments[owner]
        if judgment.status not in EDITABLE:
            raise Refused(JudgmentClosed)
        if judgment.status == "draft":
            self._assigned(owner)
        if not judgment.complete:
            raise Refused(ValidationError)
        self._refuse_if_closed()
        judgment.status = "submitted"
        judgment.active_seconds += self.sessions.pop(("judgment", owner), 0)
        self.claims.discard(owner)
        verbs = ["judgment.submitted"]
        if self.state == "awaiting_judgments" and len(self.live()) >= self.policy.overlap:
            self.state = "in_review"
            verbs.append("comparison.start_review")
        if self.state == "in_review":
            verbs += self._settle()
        return verbs

    def release(self, who: str) -> list[str]:
        if not self.may(who, "annotator"):
            raise Refused(PermissionDenied)
        if who not in self.claims:
            return []
        self.claims.discard(who)
        return ["comparison.released"]

    def expire_claims(self) -> list[str]:
        verbs = ["claim.expired"] * len(self.claims)
        self.claims.clear()
        return verbs

    # Reviews, decisions, voiding, rubric changes ------------------------------------------

    def review(self, who: str, owner: str, verdict: str) -> list[str]:
        """do_review; `verdict` is agree, disagree, revision, or objects (agrees overall and
        disagrees on one criterion)."""
        if not self.may(who, "reviewer"):
            raise Refused(PermissionDenied)
        self._check_review(who, owner)
        seconds = self.sessions.pop(("review", who, owner), 0)
        if verdict == "revision":
            for earlier in self.active_reviews(owner):
                earlier.superseded = True
            self.judgments[owner].status = "revision_requested"
            self.reviews.append(ReviewModel(owner, who, "revision", True, True, seconds))
            return ["judgment.revision_requested"]
        stored = "agree" if verdict == "objects" else verdict
        objects = verdict != "agree"
        self.reviews.append(ReviewModel(owner, who, stored, objects, False, seconds))
        return ["review.submitted", *self._settle()]

    def adjudicate(self, who: str, overall: int) -> list[str]:
        if not self.may(who, "adjudicator"):
            raise Refused(PermissionDenied)
        self._check_adjudication(who)
        seconds = self.sessions.pop(("adjudication", who), 0)
        self._decide(DecisionModel("adjudication", overall, who, seconds))
        return ["comparison.adjudicated"]

    def decide_from_agreement(self, who: str) -> list[str]:
        """Agreement decides in the same transaction, so `agreed` never lasts: always refused."""
        if not self.may(who, "reviewer", "adjudicator"):
            raise Refused(PermissionDenied)
        self._refuse_if_closed()
        raise Refused(IllegalTransition)

    def void(self, who: str, reason: str) -> list[str]:
        if not self.may(who, "adjudicator"):
            raise Refused(PermissionDenied)
        if not reason.strip():
            raise Refused(ValidationError)
        if self.state in ("decided", "voided"):
            raise Refused(IllegalTransition)
        self.state = "voided"
        self.claims.clear()
        for judgment in self.judgments.values():
            judgment.status = "voided"
        return ["comparison.voided"]

    def revise_rubric(self, who: str) -> list[str]:
        if not self.may(who, "admin"):
            raise Refused(PermissionDenied)
        self.version += 1
        return ["rubric.revise"]

    def require_rereview(self, who: str) -> list[str]:
        """do_require_rereview: judgments on an older rubric version lose their reviews and the
        comparison goes back to review."""
        if not self.may(who, "admin"):
            raise Refused(PermissionDenied)
        if not self.policy.rereview_on_rubric_change:
            raise Refused(IllegalTransition)
        stale = [
            name
            for name, j in self.judgments.items()
            if j.status == "submitted" and j.version != self.version
        ]
        if self.state not in ("in_review", "disputed") or not stale:
            return []
        for name in stale:
            for review in self.active_reviews(name):
                review.superseded = True
        self.state = "in_review"
        return ["comparison.rereview_required", *self._settle()]

    # Heartbeats: the first of a session is checked like the work itself ------------------

    def judgment_heartbeats(self, who: str, seconds: int) -> list[str]:
        key = ("judgment", who)
        verbs: list[str] = []
        if key not in self.sessions:
            if not self.may(who, "annotator"):
                raise Refused(PermissionDenied)
            verbs = self._assigned(who)
            judgment = self.judgments.get(who)
            if judgment is not None and judgment.status not in EDITABLE:
                raise Refused(JudgmentClosed)
        self.sessions[key] = self.sessions.get(key, 0) + seconds
        return verbs

    def review_heartbeats(self, who: str, owner: str, seconds: int) -> list[str]:
        key = ("review", who, owner)
        if key not in self.sessions:
            if not self.may(who, "reviewer"):
                raise Refused(PermissionDenied)
            if self.judgments[owner].status not in LIVE:
                raise Refused(Judgment.DoesNotExist)
            self._check_review(who, owner)
        self.sessions[key] = self.sessions.get(key, 0) + seconds
        return []

    def adjudication_heartbeats(self, who: str, seconds: int) -> list[str]:
        key = ("adjudication", who)
        if key not in self.sessions:
            if not self.may(who, "adjudicator"):
                raise Refused(PermissionDenied)
            self._check_adjudication(who)
        self.sessions[key] = self.sessions.get(key, 0) + seconds
        return []

    # Inside the transitions -----------------------------------------------------------------

    def _check_review(self, who: str, owner: str) -> None:
        self._refuse_if_closed()
        if who in self.judgments:  # their own judgment, or a comparison they judged
            raise Refused(PermissionDenied)
        active = self.active_reviews(owner)
        if (
            self.state != "in_review"
            or self.judgments[owner].status != "submitted"
            or who in {r.reviewer for r in active}
            or len(active) >= self.policy.reviewers_per_judgment
        ):
            raise Refused(IllegalTransition)

    def _check_adjudication(self, who: str) -> None:
        self._refuse_if_closed()
        if self.state != "disputed":
            raise Refused(IllegalTransition)
        if who in self.judgments:
            raise Refused(PermissionDenied)

    def _refuse_if_closed(self) -> None:
        if self.state in ("decided", "voided"):
            raise Refused(IllegalTransition)

    def _settle(self) -> list[str]:
        """Once every judgment has its reviews: agreed and decided, or disputed."""
        live = self.live()
        if len(live) < self.policy.overlap or any(j.status != "submitted" for j in live.values()):
            return []
        if any(self.needs_review(name) for name in live):
            return []
        judgments_agree = all(
            direction(a.overall) == direction(b.overall)
            and abs(a.overall - b.overall) <= self.policy.max_steps
            for a, b in combinations(live.values(), 2)
        )
        objections = any(r.objects for name in live for r in self.active_reviews(name))
        if judgments_agree and not objections:
            overall = median_toward_a_tie([j.overall for j in live.values()])
            self._decide(DecisionModel("agreement", overall, None, 0))
            return ["comparison.agreed", "comparison.decided"]
        self.state = "disputed"
        return ["comparison.disputed"]

    def _decide(self, decision: DecisionModel) -> None:
        self.state, self.decision = "decided", decision
        for judgment in self.live().values():
            agrees = direction(judgment.overall) == direction(decision.overall)
            judgment.status = "accepted" if agrees else "rejected"
