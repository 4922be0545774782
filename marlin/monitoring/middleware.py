"""Outermost middleware: the request id, the request's latency metric and its log line.

The id comes from the caller's X-Request-ID when it looks like one (a proxy's), else it is new;
it is returned in X-Request-ID and carried by every log line of the request. The metric and the
line name the route pattern (`compare/<str:public_id>/`), never the path: paths hold comparison
ids, and query strings may hold tokens. The user is named by id only: logs leave the
application for shared log stores, and an id is enough to look a person up here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import LazyObject, empty

from marlin.monitoring import logs, metrics

logger = logging.getLogger("marlin.requests")

UNMATCHED = "<unmatched>"


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return UNMATCHED
    return "/" + str(match.route)


def _user_id(request: HttpRequest) -> int | None:
    # Only if the request already looked its user up (a page, an API token): evaluating the lazy
    # request.user here would load the session (a query) on requests that never needed it,
    # /healthz included.
    user = request.__dict__.get("user")
    if user is None:
        return None
    if isinstance(user, LazyObject) and user._wrapped is empty:  # type: ignore[attr-defined]
        return None
    return user.pk if user.is_authenticated else None


def observe_requests(get_response: Callable[[HttpRequest], HttpResponse]):
    log_requests = settings.LOG_REQUESTS

    def middleware(request: HttpRequest) -> HttpResponse:
        # META, not request.headers: that builds a dict of every header on first use.
        request_id = logs.accepted_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = get_response(request)
            seconds = time.perf_counter() - started
            route = _route(request)
            metrics.observe_request(route, request.method or "", response.status_code, seconds)
            response["X-Request-ID"] = request_id
            if log_requests:
                logger.info(
                    "%s %s %s",
                    request.method,
                    route,
                    response.status_code,
                    extra={
                        "method": request.method,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(seconds * 1000, 1),
                        "user_id": _user_id(request),
                    },
                )
            return response
        finally:
            logs.request_id.reset(token)

    return middleware
