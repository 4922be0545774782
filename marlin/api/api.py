"""The JSON API: django-ninja, OpenAPI at /api/openapi.json, docs at /api/docs.

Every endpoint needs a Bearer token or a browser session; roles and blinding follow the web UI
(see docs/api.md). Errors are JSON objects with a `detail`.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI

from marlin.analytics.queries import FilterError
from marlin.api import catalog, catalog_tasks, results, review
from marlin.api.auth import AUTH

api = NinjaAPI(
    title="Marlin API",
    version="1",
    urls_namespace="api",
    auth=AUTH,
    description=(
        "Authenticate with `Authorization: Bearer <token>` (create tokens on your profile page). "
        "Annotators and reviewers see comparisons blind: a public id and sides A/B only."
    ),
)


def _validation_messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
    return " ".join(exc.messages)


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "Permission denied."}, status=403)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return api.create_response(request, {"detail": _validation_messages(exc)}, status=422)


@api.exception_handler(FilterError)
def _bad_filter(request: HttpRequest, exc: FilterError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=422)


@api.exception_handler(ObjectDoesNotExist)
def _missing(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
    return api.create_response(request, {"detail": "Not found."}, status=404)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "Not found."}, status=404)


api.add_router("/repositories", catalog.router)
api.add_router("/", catalog_tasks.router)
api.add_router("/", review.router)
api.add_router("/", results.router)
