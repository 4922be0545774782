"""Every error under /api/ is JSON, whoever produced it: a route that does not exist, a method a
route does not take, an exception nobody handled, a bad Host header. Pages stay HTML."""

from __future__ import annotations

import pytest
from django.test import Client

from marlin.review import queue


def test_an_unknown_api_address_is_a_json_404(client, db):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "no API endpoint at this address" in response.json()["detail"]


def test_a_method_a_route_does_not_take_is_a_json_405_that_names_the_allowed_one(client, db):
    response = client.get("/api/comparisons/next")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "POST"
    assert response.json() == {"detail": "This endpoint does not take this method."}


def test_an_unhandled_exception_is_a_json_500_and_is_logged(
    db, alice, token_for, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def broken(*args, **kwargs):
        raise RuntimeError("the queue broke")

    monkeypatch.setattr(queue, "next_comparison", broken)
    browser = Client(raise_request_exception=False)
    response = browser.post("/api/comparisons/next", headers=token_for(alice))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Internal server error.")
    assert b"the queue broke" not in response.content  # nothing of the server's inside
    assert "the queue broke" in caplog.text  # but the log has it, as for any 500


def test_a_bad_host_header_is_a_json_400(client, db):
    response = client.get("/api/comparisons", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad Request."}


def test_pages_keep_their_html_errors(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
