from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from django.contrib.auth.models import AbstractUser
from django.db import connection, models
from django.db.models.expressions import RawSQL
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    AUTHOR = "author", "Task author"
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    ADJUDICATOR = "adjudicator", "Adjudicator"


class User(AbstractUser):
    """A person using Marlin. Roles are granted separately; a user may hold several."""

    def role_names(self) -> frozenset[str]:
        cached = getattr(self, "_role_names", None)
        if cached is None:
            if not self.is_active or self.pk is None:
                cached = frozenset()
            else:
                cached = frozenset(self.role_grants.values_list("role", flat=True))
                if self.is_superuser:
                    cached = cached | {Role.ADMIN.value}
            self._role_names = cached
        return cached

    def has_role(self, *roles: str) -> bool:
        """True when the user holds any of the given roles."""
        return bool(self.role_names() & set(roles))

    def forget_roles(self) -> None:
        self.__dict__.pop("_role_names", None)

    @property
    def pseudonym(self) -> str:
        """A stable id for exports that does not reveal the person."""
        digest = hashlib.sha256(f"marlin-expert:{self.pk}:{self.date_joined.isoformat()}".encode())
        return "expert-" + digest.hexdigest()[:12]


class RoleGrant(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=20, choices=Role.choices)
    granted_at = models.DateTimeField(default=timezone.now)
    granted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="unique_role_grant")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role}"


class SsoIdentity(models.Model):
    """The single sign-on identity a user logs in with: the provider's issuer and its stable
    subject id. A login is matched by these, never by a username or an email the person may be
    able to change at the provider."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="unique_sso_identity")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"


class ExpertProfile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="expert_profile")
    skills = models.JSONField(default=list, blank=True, help_text="e.g. backend, security, ml")
    languages = models.JSONField(default=list, blank=True, help_text="e.g. python, go, rust")
    years_experience = models.PositiveSmallIntegerField(default=0)
    hourly_rate_cents = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the project's hourly rate for this expert."
    )
    bio = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# How precisely a token's last_used_at is kept (the profile page shows it to the minute).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _role_list() -> RawSQL:
    """The token's user's roles, comma-separated, as a column of the token's own query. Written
    out because the ORM's version (an EXISTS per role) took 2 ms of CPU to build, more than the
    query it saves; role names have no commas (Role)."""
    quote = connection.ops.quote_name
    grants, tokens = quote(RoleGrant._meta.db_table), quote(ApiToken._meta.db_table)
    joined = "string_agg(role, ',')" if connection.vendor == "postgresql" else "group_concat(role)"
    return RawSQL(  # noqa: S611 - table names and fixed text, no values
        f"SELECT {joined} FROM {grants} WHERE {grants}.user_id = {tokens}.user_id",  # noqa: S608
        (),
        output_field=models.TextField(),
    )


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the raw value is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple[ApiToken, str]:
        raw = "mrl_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, prefix=raw[:12], token_hash=_hash_token(raw)
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> User | None:
        # The user's roles ride along, so a request's role checks need no query of their own;
        # and the profile, as the queue reads the expert's languages.
        token = (
            cls.objects.select_related("user", "user__expert_profile")
            .annotate(role_list=_role_list())
            .filter(token_hash=_hash_token(raw), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is None:
            return None
        user = token.user
        roles = frozenset(token.role_list.split(",")) if token.role_list else frozenset()
        # The same set role_names() would read (superusers are admins).
        user._role_names = roles | {Role.ADMIN.value} if user.is_superuser else roles
        now = timezone.now()
        stale = now - LAST_USED_RESOLUTION
        if token.last_used_at is None or token.last_used_at < stale:
            # At most one write per token a minute, not one per request: a client's GETs stay
            # reads. The condition again in the UPDATE: of concurrent requests, one writes.
            cls.objects.filter(
                models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=stale),
                pk=token.pk,
            ).update(last_used_at=now)
        return user


class EarningKind(models.TextChoices):
    JUDGMENT = "judgment", "Judgment accepted"
    REVIEW = "review", "Review done"
    ADJUDICATION = "adjudication", "Adjudication done"
    ADJUSTMENT = "adjustment", "Adjustment by an admin"


class EarningEvidence(BaseModel):
    """What an Earning for a piece of work was computed from (``Earning.evidence``): the work,
    the server-measured time (the heartbeats' sessions) and the rate. ``amount_cents()`` is the
    one pay formula, used to pay and to reconcile the ledger with the audit log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    work: Literal["judgment", "review", "adjudication"]
    work_id: int = Field(ge=1)
    comparison: str = Field(description="The comparison's public id.")
    rubric_version: int | None = Field(ge=1)
    pay_mode: Literal["hourly", "per_item"]
    rate_cents: int = Field(ge=0, description="Cents per hour (hourly) or per piece of work.")
    rate_from: Literal["expert", "project"]
    active_seconds: int = Field(ge=0)
    wall_seconds: int = Field(ge=0)
    heartbeats: int = Field(ge=0)
    intervals: int = Field(ge=0, description="Heartbeat intervals counted as active.")
    sessions: list[int] = Field(description="The WorkSession rows the time comes from.")

    def amount_cents(self) -> int:
        if self.pay_mode == "hourly":
            # Rounded to the nearest cent, half up: 1 s at $60/h is 1.67 c -> 2 c.
            return (self.active_seconds * self.rate_cents + 1800) // 3600
        return self.rate_cents


class Earning(models.Model):
    """What an expert is owed for one accepted piece of work; created exactly once per source.
    A work earning names its evidence (an EarningEvidence); an admin's adjustment names its
    reason instead."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="earnings")
    project = models.ForeignKey("tasks.Project", on_delete=models.PROTECT, related_name="earnings")
    kind = models.CharField(max_length=20, choices=EarningKind.choices)
    source_type = models.CharField(max_length=40)
    source_id = models.CharField(max_length=64)
    amount_cents = models.IntegerField()
    active_seconds = models.PositiveIntegerField(default=0)
    evidence = models.JSONField(
        default=dict, blank=True, help_text="EarningEvidence: what the amount was computed from."
    )
    reason = models.TextField(blank=True)
    adjusts = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="adjustments"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "source_type", "source_id"],
                condition=~models.Q(kind="adjustment"),
                name="earning_once_per_piece_of_work",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.kind} {self.amount_cents}c"
