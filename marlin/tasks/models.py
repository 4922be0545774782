from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from marlin.tasks.rubric import OVERALL_KEY


class Rubric(models.Model):
    """Criteria and their scales. The content lives in immutable RubricVersions."""

    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    def current_version(self) -> RubricVersion:
        """The newest version. do_create_rubric writes version 1 with the rubric, so a rubric
        without one was made around the actions."""
        version = self.versions.order_by("-number").first()
        if version is None:
            raise RubricVersion.DoesNotExist(f"Rubric {self.name!r} has no version.")
        return version


class RubricVersion(models.Model):
    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    criteria = models.JSONField(help_text="List of criteria; see marlin.tasks.rubric.Criterion.")
    change_note = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rubric", "number"]
        constraints = [
            models.UniqueConstraint(fields=["rubric", "number"], name="unique_rubric_version")
        ]

    def __str__(self) -> str:
        return f"{self.rubric} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("Rubric versions are immutable; create a new version instead.")
        super().save(*args, **kwargs)

    @property
    def criterion_keys(self) -> list[str]:
        return [criterion["key"] for criterion in self.criteria]

    @property
    def rated_criteria(self) -> list[dict]:
        """The criteria rated one by one (everything but the overall preference)."""
        return [c for c in self.criteria if c["key"] != OVERALL_KEY]

    @property
    def overall_criterion(self) -> dict:
        return next(c for c in self.criteria if c["key"] == OVERALL_KEY)


class PayMode(models.TextChoices):
    PER_ITEM = "per_item", "Per piece of work"
    HOURLY = "hourly", "Hourly, from active time"


class PairSelection(models.TextChoices):
    UNIFORM = "uniform", "Uniform: the least-compared pair"
    ACTIVE = "active", "Active: the pair whose next decision is worth most per expert minute"


class SelectionTarget(models.TextChoices):
    """What active selection spends expert minutes on (marlin.analytics.selection.TARGETS)."""

    WIDTH = "width", "Precise scores: narrowest leaderboard intervals"
    SWAP = "swap", "Neighbouring ranks: fewest adjacent agents swapped"
    ORDER = "order", "Whole ranking: fewest agents in the wrong order"


def default_package_registries() -> list[str]:
    return ["pypi", "npm"]


class Project(models.Model):
    """A campaign: its rubric, agent pool, overlap, pay, review and blinding policy."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="projects")
    agent_pool = models.ManyToManyField("agents.Agent", blank=True, related_name="projects")
    is_active = models.BooleanField(default=True)

    # Judging and review policy.
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Independent judgments each comparison gets."
    )
    reviewers_per_judgment = models.PositiveSmallIntegerField(default=1)
    agreement_max_step_difference = models.PositiveSmallIntegerField(
        default=2, help_text="Largest allowed difference, in scale steps, on any criterion."
    )
    reviewers_see_annotator = models.BooleanField(default=False)
    min_rationale_chars = models.PositiveIntegerField(default=80)
    hide_checks_until_drafted = models.BooleanField(
        default=False, help_text="Hide check results until the first judgment is drafted."
    )
    reveal_agents_to_experts_after_decision = models.BooleanField(default=False)
    rereview_on_rubric_change = models.BooleanField(default=False)
    claim_timeout_minutes = models.PositiveIntegerField(default=90)
    # Blinding: seeing the same two agents again and again teaches an expert their styles.
    max_judgments_per_pair = models.PositiveSmallIntegerField(
        default=20,
        help_text="Most comparisons of the same two agents the queue gives one expert "
        "(0: no limit).",
    )
    triage = models.BooleanField(
        default=False,
        help_text="Send comparisons whose checks are decisive and whose weak label is confident "
        "to a single annotator with no review; the others get the full overlap and reviews.",
    )
    triage_threshold = models.FloatField(
        default=0.9,
        validators=[MinValueValidator(0.51), MaxValueValidator(1.0)],
        help_text="Probability the weak label must put on one side winning for triage (0.51-1).",
    )

    # Sandbox policy.
    allow_setup_network = models.BooleanField(
        default=False,
        help_text="Let setup commands reach the package registries below (pip install, npm ci), "
        "through the egress proxy; nothing else.",
    )
    package_registries = models.JSONField(
        default=default_package_registries,
        blank=True,
        help_text='Registries setup may reach: "pypi", "npm", or host:port of a mirror.',
    )
    allow_host_network = models.BooleanField(
        default=False,
        help_text='Let command agents with "network": "host" run on this project\'s tasks: '
        "they reach everything the worker's host reaches, database and Redis included.",
    )

    # Pay.
    pair_selection = models.CharField(
        max_length=20,
        choices=PairSelection.choices,
        default=PairSelection.ACTIVE,
        help_text="How tasks are paired with two agents of the pool. Active falls back to "
        "uniform until the project has decided comparisons; a tenth of its picks stay uniform.",
    )
    selection_target = models.CharField(
        max_length=10,
        choices=SelectionTarget.choices,
        default=SelectionTarget.WIDTH,
        help_text="What active selection optimises. Intervals suit reporting scores; the "
        "ranking suits choosing between agents (docs/statistics.md: which saves how much).",
    )
    pay_mode = models.CharField(max_length=20, choices=PayMode.choices, default=PayMode.PER_ITEM)
    pay_per_judgment_cents = models.PositiveIntegerField(default=2500)
    pay_per_review_cents = models.PositiveIntegerField(default=800)
    pay_per_adjudication_cents = models.PositiveIntegerField(default=1500)
    hourly_rate_cents = models.PositiveIntegerField(default=6000)

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# What an administrator may set on a project besides its name and rubric: the actions accept
# these and the policy form shows them, in this order.
PROJECT_POLICY_FIELDS = [
    "description",
    "overlap",
    "reviewers_per_judgment",
    "agreement_max_step_difference",
    "reviewers_see_annotator",
    "min_rationale_chars",
    "hide_checks_until_drafted",
    "reveal_agents_to_experts_after_decision",
    "rereview_on_rubric_change",
    "claim_timeout_minutes",
    "max_judgments_per_pair",
    "triage",
    "triage_threshold",
    "pair_selection",
    "selection_target",
    "allow_setup_network",
    "package_registries",
    "allow_host_network",
    "pay_mode",
    "pay_per_judgment_cents",
    "pay_per_review_cents",
    "pay_per_adjudication_cents",
    "hourly_rate_cents",
    "is_active",
]


class TaskKind(models.TextChoices):
    FEATURE = "feature", "Feature"
    BUG_FIX = "bug_fix", "Bug fix"
    REFACTOR = "refactor", "Refactor"
    SECURITY_FIX = "security_fix", "Security fix"
    TEST = "test", "Tests"
    DOCS = "docs", "Documentation"
    OTHER = "other", "Other"


class TaskStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    RETIRED = "retired", "Retired"


class Task(models.Model):
    """A repository at a base commit, a prompt, a kind, a setup command and checks."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="tasks")
    repository = models.ForeignKey(
        "catalog.Repository", on_delete=models.PROTECT, related_name="tasks"
    )
    base_ref = models.CharField(max_length=255, help_text="What the author typed.")
    base_commit = models.CharField(max_length=40, help_text="The resolved full SHA.")
    title = models.CharField(max_length=200)
    prompt = models.TextField(help_text="Markdown; rendered without raw HTML.")
    kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.FEATURE)
    setup_command = models.TextField(blank=True)
    environment_spec = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "How to build the environment (marlin.grading.spec.EnvironmentSpec): python, "
            "packages, requirements, pip_packages, pre_install, install. Empty: the setup "
            "command alone."
        ),
    )
    checks = models.JSONField(default=list, blank=True, help_text="List of check specs.")
    status = models.CharField(
        max_length=20, choices=TaskStatus.choices, default=TaskStatus.DRAFT, db_index=True
    )
    review_comment = models.TextField(blank=True)
    external_id = models.CharField(
        max_length=200, blank=True, db_index=True, help_text="e.g. a SWE-bench instance_id"
    )
    # What an import noticed about the record (a prompt taken from another field, listed test
    # ids that look absent at the base commit...), shown on the task page.
    import_warnings = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=40, default="authored")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="authored_tasks",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~models.Q(external_id=""),
                name="unique_task_external_id_per_project",
            )
        ]

    def __str__(self) -> str:
        return self.title


class EnvironmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Environment(models.Model):
    """The result of a task's setup command, built once per (repository, commit, setup)."""

    repository = models.ForeignKey(
        "catalog.Repository", on_delete=models.CASCADE, related_name="environments"
    )
    commit = models.CharField(max_length=40)
    setup_hash = models.CharField(max_length=64)
    setup_command = models.TextField(blank=True)
    spec = models.JSONField(default=dict, blank=True, help_text="The task's environment_spec.")
    # Steps of the spec that cannot run in the sandbox (apt-get, conda...), reported on the
    # task page instead of being skipped in silence.
    unsupported = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=20, choices=EnvironmentStatus.choices, default=EnvironmentStatus.PENDING
    )
    path = models.CharField(max_length=500, blank=True)
    log = models.TextField(blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["repository", "commit", "setup_hash"], name="unique_environment"
            )
        ]

    def __str__(self) -> str:
        return f"environment {self.repository} @ {self.commit[:10]} ({self.status})"
