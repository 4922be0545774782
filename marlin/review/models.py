from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone

from marlin.accounts.models import User


def new_public_id() -> str:
    """Opaque id for URLs and the API: reveals nothing about runs, agents or order."""
    return secrets.token_urlsafe(12)


class ComparisonState(models.TextChoices):
    AWAITING_JUDGMENTS = "awaiting_judgments", "Awaiting judgments"
    IN_REVIEW = "in_review", "In review"
    AGREED = "agreed", "Agreed"
    DISPUTED = "disputed", "Disputed"
    DECIDED = "decided", "Decided"
    VOIDED = "voided", "Voided"


class Routing(models.TextChoices):
    NONE = "", "Not routed"
    PENDING = "pending", "Waiting for its checks (triage)"
    SINGLE = "single", "One annotator, no review"
    FULL = "full", "Full overlap and review"


class Comparison(models.Model):
    """Two runs on the same task, shown blind as A and B (the sides are stored, chosen at
    random).
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    project = models.ForeignKey(
        "tasks.Project", on_delete=models.PROTECT, related_name="comparisons"
    )
    task = models.ForeignKey("tasks.Task", on_delete=models.PROTECT, related_name="comparisons")
    run_a = models.ForeignKey("agents.Run", on_delete=models.PROTECT, related_name="+")
    run_b = models.ForeignKey("agents.Run", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(
        max_length=30,
        choices=ComparisonState.choices,
        default=ComparisonState.AWAITING_JUDGMENTS,
        db_index=True,
    )
    turn_count = models.PositiveSmallIntegerField(default=1)
    # Places taken while the comparison awaits judgments: annotators with a submitted judgment
    # or an open claim. Kept by the queue's actions (claim +1, release or expiry -1, a
    # submission turns a claim into a judgment), so `next` never counts rows to find free work.
    slots_taken = models.PositiveSmallIntegerField(default=0)
    void_reason = models.TextField(blank=True)
    # The two agents as "low-high" ids, so the queue can cap how often one expert sees the same
    # pair without joining runs. Never shown to blinded users (ids identify agents).
    agent_pair = models.CharField(max_length=40, blank=True, editable=False)
    # The queue's order within a project, highest first: set by the worker's sweep from active
    # pair selection (marlin/analytics/queue_order.py), 0 until then. ``priority_note`` says why.
    priority = models.FloatField(default=0.0)
    priority_note = models.CharField(max_length=300, blank=True)
    # Triage (project policy): "single" = one annotator, no review; "full" = the project's
    # overlap and reviews; "pending" = made under triage, out of the queue until routed (a
    # column of its own, so the claim filters on this row, not on its project's policy);
    # "" = not routed (triage off).
    routing = models.CharField(max_length=10, choices=Routing.choices, blank=True, default="")
    routing_reason = models.TextField(blank=True)
    # The checks' weak label for reviewers and staff (WeakLabel in marlin/review/routing.py);
    # never shown to an annotator before their judgment.
    weak_label = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(run_a=models.F("run_b")), name="comparison_two_runs"
            )
        ]
        indexes = [
            # The queue's order (oldest first) over comparisons awaiting judgments only: `next`
            # reads the first rows, however many comparisons are open or decided.
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(state="awaiting_judgments"),
                name="comparison_awaiting",
            ),
            # The claim's order: priority, then oldest first, over comparisons awaiting only.
            models.Index(
                models.F("priority").desc(),
                "created_at",
                "id",
                condition=models.Q(state="awaiting_judgments"),
                name="comparison_awaiting_priority",
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.public_id}"

    @property
    def judgments_required(self) -> int:
        """Judgments this comparison takes: one when triage routed it to a single annotator."""
        return 1 if self.routing == Routing.SINGLE else self.project.overlap

    @property
    def reviews_required(self) -> int:
        """Reviews each of its judgments needs: none when triage routed it to one annotator."""
        return 0 if self.routing == Routing.SINGLE else self.project.reviewers_per_judgment

    def has_judged(self, user: User) -> bool:
        """Whether the user has a judgment (in any status, a draft too) on this comparison."""
        return self.judgments.filter(annotator_id=user.pk).exists()

    def is_held_by(self, user: User) -> bool:
        """Whether the user works on this comparison as an annotator: a judgment or an open
        claim.
        """
        return (
            self.has_judged(user)
            or self.claims.filter(annotator_id=user.pk, released_at__isnull=True).exists()
        )

    def check_adjudicator(self, user: User) -> None:
        """Refuse an adjudicator who judged this comparison (the page and do_adjudicate ask)."""
        if self.has_judged(user):
            raise PermissionDenied(
                "You judged this comparison yourself; another adjudicator must decide it."
            )


class Claim(models.Model):
    """An annotator holding a comparison from the queue. Released when abandoned."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="claims")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="claims"
    )
    claimed_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "annotator"],
                condition=models.Q(released_at__isnull=True),
                name="one_open_claim_per_annotator",
            )
        ]

    def __str__(self) -> str:
        return f"claim of {self.comparison} by {self.annotator_id}"


class JudgmentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    REVISION_REQUESTED = "revision_requested", "Revision requested"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    VOIDED = "voided", "Voided"


# A draft, or a judgment a reviewer sent back: its annotator may still change it.
EDITABLE_STATUSES = (JudgmentStatus.DRAFT, JudgmentStatus.REVISION_REQUESTED)


class Judgment(models.Model):
    """One expert's verdict on a comparison, bound to the rubric version it used."""

    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments"
    )
    rubric_version = models.ForeignKey(
        "tasks.RubricVersion", on_delete=models.PROTECT, related_name="judgments"
    )
    status = models.CharField(
        max_length=30, choices=JudgmentStatus.choices, default=JudgmentStatus.DRAFT, db_index=True
    )
    ratings = models.JSONField(
        default=dict, blank=True, help_text="criterion key -> -3..3 (A..B) or null (n/a)"
    )
    overall = models.SmallIntegerField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1-5")
    comments = models.JSONField(default=list, blank=True, help_text="Line-anchored comments.")
    turn_notes = models.JSONField(default=dict, blank=True, help_text="turn number -> remark")
    # The preference on each turn the expert judged (-3..3): earlier turns as they chose, the
    # last judged turn's is `overall` (set at submission), so a follow-up that changed the
    # outcome shows in the data.
    turn_verdicts = models.JSONField(
        default=dict, blank=True, help_text="turn number -> overall preference on that turn"
    )
    turn_judged = models.PositiveSmallIntegerField(default=1)
    # Measured by the server from heartbeats (WorkSession), added up at each submission; never
    # taken from the client. Wall time runs from a session's first heartbeat to the submission.
    active_seconds = models.PositiveIntegerField(default=0)
    wall_seconds = models.PositiveIntegerField(default=0)
    draft_revision = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["comparison", "started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "annotator"], name="one_judgment_per_annotator"
            )
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk} by {self.annotator} on {self.comparison}"

    @property
    def is_editable(self) -> bool:
        """A draft, or a judgment a reviewer sent back: its annotator may still change it."""
        return self.status in EDITABLE_STATUSES

    def check_reviewer(self, user: User) -> None:
        """Refuse a reviewer who wrote this judgment or judged its comparison (the review page
        and do_review ask)."""
        if self.annotator_id == user.pk:
            raise PermissionDenied("You cannot review your own judgment; another reviewer must.")
        if Judgment.objects.filter(comparison_id=self.comparison_id, annotator_id=user.pk).exists():
            raise PermissionDenied(
                "You judged this comparison yourself, so you cannot review its judgments."
            )


class ReviewVerdict(models.TextChoices):
    AGREE = "agree", "Agree"
    DISAGREE = "disagree", "Disagree"
    REVISION = "revision", "Request a revision"


class Review(models.Model):
    judgment = models.ForeignKey(Judgment, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    verdict = models.CharField(max_length=20, choices=ReviewVerdict.choices)
    per_criterion = models.JSONField(
        default=dict, blank=True, help_text="criterion key -> {agree: bool, reason: str}"
    )
    reason = models.TextField()
    active_seconds = models.PositiveIntegerField(default=0, help_text="Measured by the server.")
    created_at = models.DateTimeField(default=timezone.now)
    # The rubric the reviewer read (re-reviews after a rubric change use the newer one).
    rubric_version = models.ForeignKey(
        "tasks.RubricVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Set when a revision request or a rubric change sends the judgment back: the review stays
    # as history (and is paid) but no longer counts towards the judgment's reviews.
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["judgment", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["judgment", "reviewer"],
                condition=models.Q(superseded_at__isnull=True),
                name="one_review_per_reviewer",
            )
        ]

    def __str__(self) -> str:
        return f"review {self.pk} by {self.reviewer} on judgment {self.judgment_id}: {self.verdict}"


class DecisionSource(models.TextChoices):
    AGREEMENT = "agreement", "Agreement"
    ADJUDICATION = "adjudication", "Adjudication"


class Decision(models.Model):
    """The final preference of a comparison: the single truth statistics and exports read."""

    comparison = models.OneToOneField(Comparison, on_delete=models.PROTECT, related_name="decision")
    source = models.CharField(max_length=20, choices=DecisionSource.choices)
    overall = models.SmallIntegerField(help_text="-3..3; negative prefers side A")
    ratings = models.JSONField(default=dict, blank=True)
    rationale = models.TextField()
    rubric_version = models.ForeignKey(
        "tasks.RubricVersion", on_delete=models.PROTECT, related_name="decisions"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions",
    )
    decided_at = models.DateTimeField(default=timezone.now)
    active_seconds = models.PositiveIntegerField(default=0, help_text="Measured by the server.")

    def __str__(self) -> str:
        return f"decision on {self.comparison}"


class WorkKind(models.TextChoices):
    JUDGMENT = "judgment", "Judgment"
    REVIEW = "review", "Review"
    ADJUDICATION = "adjudication", "Adjudication"


class WorkSession(models.Model):
    """One person's server-measured time on one piece of work, from heartbeats.

    The page (or an API client) sends a heartbeat while its user is active; the server stamps
    it. An interval between two heartbeats at most ``MARLIN_ACTIVITY_GAP_SECONDS`` apart counts
    as active; a longer gap does not. Times are epoch milliseconds so a heartbeat is one integer
    UPDATE on every database. The session closes when the work is submitted (``work_id`` then
    names the judgment, review or decision it was added to); later heartbeats open a new one.

    ``subject_id`` is what is being worked on: the comparison for a judgment or an adjudication,
    the judgment for a review.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="work_sessions"
    )
    kind = models.CharField(max_length=20, choices=WorkKind.choices)
    comparison = models.ForeignKey(
        Comparison, on_delete=models.PROTECT, related_name="work_sessions"
    )
    subject_id = models.BigIntegerField()
    opened_ms = models.BigIntegerField(help_text="Server time of the first heartbeat (epoch ms).")
    last_seen_ms = models.BigIntegerField(help_text="Server time of the latest heartbeat.")
    active_ms = models.BigIntegerField(default=0)
    heartbeats = models.PositiveIntegerField(default=1)
    intervals = models.PositiveIntegerField(default=0, help_text="Intervals counted as active.")
    closed_ms = models.BigIntegerField(null=True, blank=True)
    work_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "subject_id"],
                condition=models.Q(closed_ms__isnull=True),
                name="one_open_work_session",
            )
        ]
        indexes = [models.Index(fields=["kind", "work_id"])]

    def __str__(self) -> str:
        return f"{self.kind} session {self.pk} of {self.user_id} on {self.subject_id}"
