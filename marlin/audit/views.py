from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marlin.audit.models import AuditEvent
from marlin.permissions import role_required


@role_required()
def event_list(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.select_related("actor").order_by("-sequence")
    filters = {
        "actor": "actor_name__iexact",
        "verb": "verb__startswith",
        "object_type": "object_type",
        "object_id": "object_id",
        "project": "project_id",
    }
    for param, lookup in filters.items():
        value = request.GET.get(param, "").strip()
        if value:
            events = events.filter(**{lookup: value})
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    verbs = AuditEvent.objects.order_by().values_list("verb", flat=True).distinct()
    return render(
        request,
        "audit/event_list.html",
        {
            "page": page,
            "filters": query.urlencode(),
            "verbs": sorted(set(verbs)),
            "current": request.GET,
        },
    )
