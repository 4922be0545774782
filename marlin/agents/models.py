from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.db import models
from django.db.models.functions import Length, Substr
from django.utils import timezone

from marlin.diffs.index import INDEX_VERSION, index_patch


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible API"
    ANTHROPIC = "anthropic", "Anthropic Messages API"
    COMMAND = "command", "Command-line agent"
    IMPORT = "import", "Imported candidates"


class Agent(models.Model):
    """A named, versioned way to produce a patch. Settings never hold a secret in clear: they
    name an environment variable or a secrets file the worker reads."""

    name = models.CharField(max_length=100)
    version_label = models.CharField(max_length=100, default="1")
    provider = models.CharField(max_length=20, choices=Provider.choices)
    settings = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "version_label"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version_label"], name="unique_agent_version")
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version_label}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting for a follow-up"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Run(models.Model):
    """One agent working on one task, turn by turn."""

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="runs")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    conversation = models.JSONField(
        default=list, blank=True, help_text="Provider-neutral message history across turns."
    )
    workspace_path = models.CharField(max_length=500, blank=True)
    partner = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The other run of the pair this run was started with (both point at each other).",
    )
    error = models.TextField(blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.agent} on task {self.task_id}"


class TurnStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Turn(models.Model):
    """One prompt (the task's or a follow-up) and the candidate it led to."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="turns")
    number = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    status = models.CharField(
        max_length=20, choices=TurnStatus.choices, default=TurnStatus.QUEUED, db_index=True
    )
    exit_status = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Proxy mode: every connection the agent opened through the egress proxy (host, port, kind,
    # allowed, reason, bytes), first ones first; marlin.sandbox.egress.Connection.as_dict().
    network_log = models.JSONField(default=list, blank=True)
    network_log_dropped = models.PositiveIntegerField(
        default=0, help_text="Connections past the ones kept in network_log."
    )

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="unique_turn")]

    def __str__(self) -> str:
        return f"turn {self.number} of run {self.run_id}"


class Candidate(models.Model):
    """The patch a run produced at a turn, with its trajectory and cost."""

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="candidate")
    patch = models.TextField(blank=True, help_text="Cumulative diff against the base commit.")
    files_changed = models.PositiveIntegerField(default=0)
    lines_added = models.PositiveIntegerField(default=0)
    lines_removed = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    duration_seconds = models.FloatField(null=True, blank=True)
    fingerprints = models.JSONField(
        default=list, blank=True, help_text="Identity fingerprints found (kind, match, line)."
    )
    scrubbed_patch = models.TextField(
        blank=True, help_text="What experts see when fingerprints were found."
    )
    # marlin.diffs.index of patch_for_experts, made when the candidate is saved (or, for rows
    # written without save(), on first read): the comparison page reads files from it.
    diff_index = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"candidate of {self.turn}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Re-indexed whenever the text experts see may have changed and is loaded here.
        shown = {"patch", "scrubbed_patch", "fingerprints"}
        update_fields = kwargs.get("update_fields")
        touched = update_fields is None or bool(shown & set(update_fields))
        if touched and not shown & self.get_deferred_fields():
            self.diff_index = index_patch(self.patch_for_experts)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "diff_index"}
        super().save(*args, **kwargs)

    @property
    def is_flagged(self) -> bool:
        return bool(self.fingerprints)

    @property
    def patch_for_experts(self) -> str:
        return self.scrubbed_patch if self.fingerprints else self.patch

    def patch_sections(self, wanted: Callable[[dict[str, Any]], bool]) -> str | None:
        """The sections of ``patch_for_experts`` whose index entries ``wanted`` picks, joined,
        read with SQL SUBSTR instead of loading the whole text; None when the stored index has
        no usable sections or no longer matches the text (then read the patch itself)."""
        index = self.diff_index
        if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
            return None
        if not index.get("sections"):
            return None
        column = "scrubbed_patch" if self.fingerprints else "patch"
        entries = [e for e in index["files"] if wanted(e)]
        names: dict[str, Any] = {"length": Length(column)}
        for n, e in enumerate(entries):
            names[f"section_{n}"] = Substr(column, e["start"] + 1, e["end"] - e["start"])
        row = Candidate.objects.filter(pk=self.pk).annotate(**names).values_list(*names).first()
        if row is None or row[0] != index.get("length"):
            return None
        return "".join(str(text) for text in row[1:])


class TrajectoryStep(models.Model):
    """One step an agent took, saved as it happened."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, help_text="model, tool, output, error, note")
    content = models.JSONField(default=dict)
    scrubbed_content = models.JSONField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["turn", "index"]
        constraints = [models.UniqueConstraint(fields=["turn", "index"], name="unique_step")]

    def __str__(self) -> str:
        return f"step {self.index} of {self.turn}"
