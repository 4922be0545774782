"""The Django admin site Marlin serves: open to the admin role only (is_staff follows the admin
role grant, but a role can be revoked without touching is_staff, so the role is what counts)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class MarlinAdminSite(admin.AdminSite):
    site_header = "Marlin administration"
    site_title = "Marlin administration"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_authenticated and user.has_role("admin"))


class MarlinAdminConfig(AdminConfig):
    """django.contrib.admin with Marlin's site as `admin.site`, so every app's admin.py registers
    on it without importing it."""

    default_site = "marlin.adminsite.MarlinAdminSite"
