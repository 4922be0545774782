"""The Django admin site Marlin serves: open to the admin role only (is_staff follows the admin
role grant, but a role can be revoked without touching is_staff, so the role is what counts).

The admin is a window onto the rows, not a second way to change them: every change that matters
goes through a `do_*` action that writes its audit event, and the admin cannot do that for an
arbitrary form save. So the domain models are registered with `ReadOnlyAdmin`, which shows them
to the admin role (by role, not by Django's per-model permission rows, which Marlin does not
grant) and refuses add, change and delete to everyone, superusers included. Users and their
roles are the one exception (marlin/accounts/admin.py): their admin saves call the accounts
actions.

This module imports no Marlin app, so every app's admin.py can build on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models import Model
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url


class MarlinAdminSite(admin.AdminSite):
    site_header = "Marlin administration"
    site_title = "Marlin administration"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_authenticated and user.has_role("admin"))

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """Visitors log in on Marlin's own page (which audits the login, offers single sign-on
        and honours MARLIN_OIDC_ONLY); a logged-in user without the admin role gets the
        admin's page saying so."""
        if not request.user.is_authenticated:
            # Not auth.views.redirect_to_login: this module is imported before the apps load.
            next_url = request.GET.get("next") or request.get_full_path()
            return HttpResponseRedirect(
                f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': next_url})}"
            )
        return super().login(request, extra_context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the admin role may look at and nobody may change here: the product's pages and
    actions change them, each with its audit event."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.admin_site.has_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class MarlinAdminConfig(AdminConfig):
    """django.contrib.admin with Marlin's site as `admin.site`, so every app's admin.py registers
    on it without importing it."""

    default_site = "marlin.adminsite.MarlinAdminSite"
