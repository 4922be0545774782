"""The job queue's rows (django-tasks-db) in Marlin's admin: its own ModelAdmin is read-only but
asks for Django's per-model permission rows, which the admin role does not hold."""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

admin.site.unregister(DBTaskResult)


@admin.register(DBTaskResult)
class JobResultAdmin(DBTaskResultAdmin):
    """django-tasks-db's read-only columns and traceback, shown to the admin role."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.admin_site.has_permission(request)
