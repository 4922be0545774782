"""Users and roles in the admin: the one place the admin changes rows, and only through the
accounts actions, so each change is an audit event with the admin as actor and the reason they
gave. Profiles, tokens and earnings are shown read-only; pay adjustments have their own page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.forms import UserCreationForm, UsernameField
from django.contrib.auth.models import Group
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from marlin.accounts import actions
from marlin.accounts.models import (
    ApiToken,
    Earning,
    ExpertProfile,
    Role,
    RoleGrant,
    SsoIdentity,
    User,
)
from marlin.adminsite import ReadOnlyAdmin

# Marlin's access is RoleGrant rows; Django's groups and permission rows grant nothing here, and
# editing them in the admin would be a change without an audit event.
admin.site.unregister(Group)

REASON_HELP = "Why you make this change; kept in the audit log."


def _roles_of(user: User) -> list[str]:
    return sorted(user.role_grants.values_list("role", flat=True))


class UserAddForm(UserCreationForm):
    """Django's checks (two passwords that match and pass the validators, a valid username
    unused in any case), plus roles and a reason; UserAdmin.save_model creates the user through
    do_create_user, never this form's save()."""

    roles = forms.MultipleChoiceField(
        choices=Role.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text=REASON_HELP)

    class Meta:
        model = User
        fields = ["username", "email"]
        field_classes = {"username": UsernameField}

    def clean_username(self) -> str:
        # Django's check first (no name that differs from another only in case; it adds its
        # error and returns None), then the rule do_create_user applies, shown on the form
        # instead of failing at save.
        username = super().clean_username()
        problem = username is not None and actions.username_problem(username)
        if problem:
            raise forms.ValidationError(problem)
        return username


class UserChangeForm(forms.ModelForm):
    roles = forms.MultipleChoiceField(
        choices=Role.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    hourly_rate_cents = forms.IntegerField(
        min_value=0,
        required=False,
        label="Hourly rate (cents)",
        help_text="Overrides the project's hourly rate for this expert; empty uses the project's.",
    )
    reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=REASON_HELP
    )
    # Set per request by UserAdmin.get_form: who is saving, so nobody locks themselves out.
    actor: User | None = None

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user = self.instance
        profile = ExpertProfile.objects.filter(user=user).first()
        self.initial.setdefault("roles", _roles_of(user))
        self.initial.setdefault("hourly_rate_cents", profile.hourly_rate_cents if profile else None)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        changed = set(self.changed_data) - {"reason"}
        if changed and not data.get("reason", "").strip():
            self.add_error("reason", "Say why you make this change: it goes into the audit log.")
        if self.actor is not None and self.actor.pk == self.instance.pk:
            if "is_active" in changed and not data.get("is_active"):
                self.add_error("is_active", "You cannot deactivate yourself; ask another admin.")
            if "roles" in changed and Role.ADMIN not in data.get("roles", []):
                self.add_error("roles", "You cannot remove your own admin role; ask another admin.")
        return data


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    """Create users, change their roles, name, email, rate, and (de)activate them. Deleting is
    not offered: earnings and audit events point at the account, so deactivate it instead."""

    form = UserChangeForm
    add_form = UserAddForm
    list_display = ["username", "email", "role_list", "is_active", "is_superuser", "last_login"]
    list_filter = ["is_active", "is_superuser", "role_grants__role"]
    search_fields = ["username", "email", "first_name", "last_name"]
    ordering = ["username"]
    readonly_fields = ["username", "is_staff", "is_superuser", "last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ["username", "email", "first_name", "last_name"]}),
        ("Access", {"fields": ["is_active", "roles", "is_staff", "is_superuser"]}),
        ("Pay", {"fields": ["hourly_rate_cents"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
        (None, {"fields": ["reason"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["username", "email", "password1", "password2", "roles", "reason"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("role_grants")

    @admin.display(description="roles")
    def role_list(self, user: User) -> str:
        return ", ".join(sorted(grant.role for grant in user.role_grants.all()))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.admin_site.has_permission(request)

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return [] if obj is None else self.readonly_fields

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, change=change, **kwargs)
        # The form checks that nobody locks themselves out, so it needs to know who saves.
        return type(form.__name__, (form,), {"actor": request.user})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Apply the form through the actions instead of obj.save(); the admin's own
        transaction around the view makes the events and the changes commit together."""
        actor = request.user
        assert isinstance(actor, User)
        data = form.cleaned_data
        reason = data["reason"].strip()
        if not change:
            user = actions.do_create_user(
                actor,
                obj.username,
                data["password1"],
                roles=data["roles"],
                email=obj.email,
                reason=reason,
            )
            # The admin goes on to log and redirect to `obj`: make it the saved row.
            obj.pk, obj._state.adding, obj._state.db = user.pk, False, user._state.db
            return
        user = User.objects.select_for_update().get(pk=obj.pk)
        actions.do_update_user(
            actor, user, {name: getattr(obj, name) for name in actions.USER_FIELDS}, reason=reason
        )
        actions.do_set_user_active(actor, user, obj.is_active, reason=reason)
        held, wanted = set(_roles_of(user)), set(data["roles"])
        for role in sorted(wanted - held):
            actions.do_grant_role(actor, user, role, reason=reason)
        for role in sorted(held - wanted):
            actions.do_revoke_role(actor, user, role, reason=reason)
        rate = data["hourly_rate_cents"]
        profile = ExpertProfile.objects.filter(user=user).first()
        if profile is not None or rate is not None:
            # A user made without a profile (createsuperuser) gets one here, as profile.create.
            profile = profile or ExpertProfile(user=user)
            actions.do_update_profile(actor, profile, {"hourly_rate_cents": rate}, reason=reason)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing: roles were saved by save_model through the actions, and the form edits no
        many-to-many field (Django's groups and permissions are not Marlin's access)."""


@admin.register(RoleGrant)
class RoleGrantAdmin(ReadOnlyAdmin):
    """Grants are changed on the user's page (through do_grant_role / do_revoke_role)."""

    list_display = ["user", "role", "granted_at", "granted_by"]
    list_filter = ["role"]
    search_fields = ["user__username"]
    list_select_related = ["user", "granted_by"]


@admin.register(SsoIdentity)
class SsoIdentityAdmin(ReadOnlyAdmin):
    """Made by a first single sign-on login (marlin/accounts/sso.py); removing one would let the
    next login with that identity make a new account, so it is not offered here."""

    list_display = ["user", "issuer", "subject", "created_at"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "subject"]
    list_select_related = ["user"]


@admin.register(ExpertProfile)
class ExpertProfileAdmin(ReadOnlyAdmin):
    list_display = ["user", "years_experience", "hourly_rate_cents"]
    search_fields = ["user__username"]
    list_select_related = ["user"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    # Never the hash: it is what a stolen database would be matched against.
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]


@admin.register(Earning)
class EarningAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "user",
        "project",
        "kind",
        "amount_cents",
        "active_seconds",
        "source_type",
        "source_id",
    ]
    list_filter = ["kind", "project"]
    search_fields = ["user__username", "source_id", "reason"]
    list_select_related = ["user", "project"]
    date_hierarchy = "created_at"
