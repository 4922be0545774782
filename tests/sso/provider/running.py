"""Start the test OpenID Connect provider (tests.sso.provider) as a subprocess on a free
loopback port, and change its users, groups and client over its test-admin endpoint."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[3]
START_SECONDS = 90  # migrations and an RSA key on a loaded two-core machine


class Provider:
    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url
        self.issuer = f"{url}/openid"
        self._admin_token = admin_token

    def _manage(self, what: str, data: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/test-admin/{what}/",
            json=data,
            headers={"X-Provider-Admin": self._admin_token},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def set_user(self, username: str, password: str, groups: list[str], **fields: str) -> str:
        """Create or change a person at the provider; returns their subject id."""
        data = {"username": username, "password": password, "groups": groups, **fields}
        return self._manage("user", data)["sub"]

    def set_client(
        self, client_id: str, secret: str, redirect_uris: list[str], logout_uris: list[str]
    ) -> None:
        self._manage(
            "client",
            {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": logout_uris,
            },
        )

    def override_id_tokens(self, **claims: Any) -> None:
        """Make every ID token signed from now on carry these claims (none: honest again)."""
        self._manage("id-token-overrides", claims)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_provider(directory: Path) -> Iterator[Provider]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.sso.provider.settings",
        "PROVIDER_DB": str(directory / "provider.sqlite3"),
        "PROVIDER_SITE_URL": url,
        "PROVIDER_ADMIN_TOKEN": token,
        "PYTHONPATH": str(ROOT),
    }
    log_path = directory / "provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "serve_provider",
                f"127.0.0.1:{port}",
                "--parent-pid",
                str(os.getpid()),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        provider = Provider(url, token)
        _wait_until_up(provider, process, log_path)
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(provider: Provider, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    discovery = f"{provider.issuer}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the test provider exited:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(discovery, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the test provider did not start:\n{log_path.read_text()[-3000:]}")
