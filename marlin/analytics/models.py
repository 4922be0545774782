"""Reference judgments: external pairwise verdicts (an arena's battles, a crowd's, an LLM
judge's) imported to rank beside the experts' leaderboard. They are never Decisions: they do not
enter the experts' leaderboard, exports or pay.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ReferenceSet(models.Model):
    """One imported file of reference judgments for a project."""

    project = models.ForeignKey(
        "tasks.Project", on_delete=models.PROTECT, related_name="reference_sets"
    )
    name = models.CharField(max_length=200, help_text="The file's name, shown on the page.")
    format = models.CharField(max_length=10)  # json, jsonl or csv
    sha256 = models.CharField(max_length=64, help_text="Of the file: one import per content.")
    records = models.PositiveIntegerField(default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="reference_set_once")
        ]

    def __str__(self) -> str:
        return f"reference set {self.name} of {self.project_id}"


class Winner(models.TextChoices):
    A = "a", "model A"
    B = "b", "model B"
    TIE = "tie", "tie"


class ReferenceJudgment(models.Model):
    reference_set = models.ForeignKey(
        ReferenceSet, on_delete=models.CASCADE, related_name="judgments"
    )
    line_no = models.PositiveIntegerField()
    model_a = models.CharField(max_length=200)
    model_b = models.CharField(max_length=200)
    winner = models.CharField(max_length=3, choices=Winner.choices)
    judge = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.model_a} vs {self.model_b}: {self.winner}"
