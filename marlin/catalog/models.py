from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


class MirrorStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    MIRRORING = "mirroring", "Mirroring"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Repository(models.Model):
    """A git repository in the catalog, with its local bare mirror."""

    url = models.CharField(max_length=500, help_text="The URL as given (validated).")
    normalized_url = models.CharField(max_length=500, unique=True, editable=False)
    name = models.CharField(max_length=200, db_index=True, help_text="owner/name")
    host = models.CharField(max_length=200, blank=True)
    is_local = models.BooleanField(default=False)
    language = models.CharField(max_length=50, blank=True, db_index=True)
    stars = models.PositiveIntegerField(null=True, blank=True)
    license = models.CharField(max_length=100, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="repositories")
    description = models.TextField(blank=True)

    mirror_status = models.CharField(
        max_length=20, choices=MirrorStatus.choices, default=MirrorStatus.PENDING, db_index=True
    )
    mirror_path = models.CharField(max_length=500, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    mirror_started_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.name

    @property
    def is_mirrored(self) -> bool:
        return self.mirror_status == MirrorStatus.READY and bool(self.mirror_path)
