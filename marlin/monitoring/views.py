"""/healthz, /readyz and /metrics: no login (load balancers and Prometheus have none).

/healthz answers from the process alone (no database, no file), so it stays cheap at any probe
rate. /readyz runs the readiness checks (marlin/monitoring/health.py). /metrics wants the bearer
token MARLIN_METRICS_TOKEN (or _FILE); without one configured it answers only to loopback
clients that came through no proxy.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from marlin.monitoring import health, metrics


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks = health.readiness()
    failing = [check.name for check in checks if not check.ok]
    body = {
        "status": "ready" if not failing else "not ready",
        "failing": failing,
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
    }
    return JsonResponse(body, status=503 if failing else 200)


def _from_loopback_directly(request: HttpRequest) -> bool:
    # A proxy on the same machine connects from loopback too; the headers it adds give it away.
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return _from_loopback_directly(request)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _may_scrape(request):
        response = HttpResponse(
            "Send the metrics token: Authorization: Bearer <MARLIN_METRICS_TOKEN>. Without a "
            "token configured, /metrics answers only to loopback clients.\n",
            status=401 if settings.METRICS_TOKEN else 403,
            content_type="text/plain",
        )
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
