"""Views for checks: the re-run action on a task's page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.checks.actions import do_rerun_checks
from marlin.permissions import role_required
from marlin.tasks.models import Task


@role_required("author")
@require_POST
def rerun_checks(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    requeued = do_rerun_checks(request.user, task, reason=request.POST.get("reason", "").strip())
    messages.success(
        request,
        f"{requeued} check result(s) queued again; running and queued checks were left alone.",
    )
    return redirect("tasks:detail", task_id=task.pk)
