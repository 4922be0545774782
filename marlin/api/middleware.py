"""Every error under /api/ is a JSON object with a `detail`, never an HTML page.

django-ninja answers JSON for the errors its views raise, but some answers never reach a view:
a URL no route matches (Django's 404 page), a method a route does not take (an empty 405), a bad
Host header (400), an exception nobody handled (Django's 500 page, logged by Django as usual).
This middleware sits outermost, so it sees all of them, and rewrites an error answer that is not
JSON into `{"detail": ...}` with the same status and headers (Allow, Retry-After...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse

API_PREFIX = "/api/"
_MESSAGES = {
    404: "Not found: no API endpoint at this address (see /api/docs).",
    405: "This endpoint does not take this method.",
    500: "Internal server error. It was logged; try again or tell an admin.",
}


def _detail(status: int) -> str:
    if status in _MESSAGES:
        return _MESSAGES[status]
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"


def json_api_errors(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(API_PREFIX)
            or _is_json(response)
            or getattr(response, "streaming", False)
        ):
            return response
        # Keep what the answer's headers say (Allow on a 405, cookies); replace the body.
        response.content = json.dumps({"detail": _detail(response.status_code)}).encode()
        response["Content-Type"] = "application/json"
        response["Content-Length"] = str(len(response.content))
        return response

    return middleware
