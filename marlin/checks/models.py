"""Check results: one row per (candidate, check of its task), the truth about each check's
state (the job queue only says which row to look at)."""

from django.db import models
from django.utils import timezone


class CheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    TIMED_OUT = "timed_out", "Timed out"


class CheckResult(models.Model):
    """One check of the task run against one candidate. Exactly one row per (candidate, check)."""

    candidate = models.ForeignKey(
        "agents.Candidate", on_delete=models.CASCADE, related_name="check_results"
    )
    check_index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    status = models.CharField(
        max_length=20, choices=CheckStatus.choices, default=CheckStatus.QUEUED, db_index=True
    )
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    tests = models.JSONField(default=list, blank=True)
    findings = models.JSONField(default=list, blank=True)
    # Each listed test id (FAIL_TO_PASS / PASS_TO_PASS) and its status: grading.RequiredTest.
    required = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True)
    detail = models.TextField(blank=True)
    limits = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table keeps the name it had when check results lived in the agents app.
        db_table = "agents_checkresult"
        ordering = ["candidate", "check_index"]
        constraints = [
            models.UniqueConstraint(fields=["candidate", "check_index"], name="unique_check_result")
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"
