from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ExportKind(models.TextChoices):
    PREFERENCES = "preferences", "Preference pairs (JSON lines + Parquet, TRL format)"
    RECORDS = "records", "Judgments, reviews and decisions (JSON lines)"
    PREDICTIONS = "predictions", "Winning candidates (SWE-bench predictions)"
    TASKS = "tasks", "Task set for re-runs"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Export(models.Model):
    """An immutable snapshot written to the data directory, with a manifest of SHA-256 hashes."""

    project = models.ForeignKey("tasks.Project", on_delete=models.PROTECT, related_name="exports")
    kind = models.CharField(max_length=20, choices=ExportKind.choices)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=20, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    directory = models.CharField(max_length=500, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} export {self.pk}"
