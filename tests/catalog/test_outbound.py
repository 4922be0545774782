"""Where git may connect: repository URLs that point at internal services are refused when they
are added or imported (API, page, command line) and again right before git connects; git's
network operations are bounded and their errors say what went wrong, not what answered.

Refusals of private, link-local and metadata addresses are decided before any connection, with
the test resolver (tests/conftest.py); every server a test connects to listens on loopback and
is allowed for that test by name (MARLIN_ALLOWED_INTERNAL_GIT_HOSTS).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from marlin.accounts.models import ApiToken
from marlin.audit.models import AuditEvent
from marlin.catalog.actions import do_add_repository
from marlin.catalog.jobs import mirror_path_for, mirror_repository
from marlin.catalog.models import MirrorStatus, Repository
from marlin.catalog.validation import (
    OutboundPolicy,
    RefusedDestination,
    address_problem,
    validate_url,
)
from tests.catalog.servers import (
    PlainServer,
    SilentServer,
    TLSServer,
    make_certificate,
)

INTERNAL_URLS = [
    ("https://127.0.0.1:5432/x/y", "127.0.0.1 is a loopback address"),
    ("https://localhost/x/y", "localhost resolves to a loopback address"),
    ("https://0x7f000001/x/y", "0x7f000001 (127.0.0.1) is a loopback address"),
    ("https://2130706433/x/y", "2130706433 (127.0.0.1) is a loopback address"),
    ("https://127.1/x/y", "127.1 (127.0.0.1) is a loopback address"),
    ("https://0177.0.0.1/x/y", "0177.0.0.1 (127.0.0.1) is a loopback address"),
    ("https://[::1]/x/y", "[::1] is a loopback address"),
    ("https://[::ffff:127.0.0.1]/x/y", "[::ffff:127.0.0.1] is a loopback address"),
    ("https://[64:ff9b::7f00:1]/x/y", "is a loopback address"),  # NAT64 of 127.0.0.1
    ("https://10.0.0.5/x/y", "10.0.0.5 is a private address"),
    ("https://172.16.3.4/x/y", "a private address"),
    ("https://192.168.1.1/x/y", "a private address"),
    ("git@192.168.1.1:x/y.git", "a private address"),
    ("ssh://git@10.1.1.1:2222/x/y", "a private address"),
    ("https://[fd00:ec2::254]/latest/meta-data", "a private address"),
    ("https://169.254.169.254/latest/meta-data", "a link-local address"),
    ("https://[fe80::1]/x/y", "a link-local address"),
    ("https://100.100.100.200/latest/meta-data", "a non-public address"),  # shared space
    ("https://224.0.0.1/x/y", "a multicast address"),
    ("https://0.0.0.0/x/y", "the unspecified address"),
    ("https://[::]/x/y", "the unspecified address"),
    ("https://240.0.0.1/x/y", "a private address"),
    ("https://1.2.3.4.5/x/y", "neither a host name nor an IPv4 address"),
]


@pytest.fixture
def internal_names(resolver) -> None:
    """Names whose DNS answers point inside: the attacker's own domain can answer anything."""
    resolver.names.update(
        {
            "git.corp.example": ["10.20.30.40"],
            "metadata.example": ["169.254.169.254"],
            "rebind.example": ["140.82.112.4", "127.0.0.1"],  # one bad answer is enough
            "v6.example": ["fd12::1"],
            "mapped.example": ["::ffff:192.168.0.1"],
            "gone.example": [],
        }
    )


# --- the decision itself ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
def test_the_policy_refuses_internal_addresses_in_every_spelling(
    url: str, reason: str, resolver
) -> None:
    with pytest.raises(RefusedDestination) as refused:
        OutboundPolicy().check(validate_url(url))
    assert reason in str(refused.value)
    assert str(refused.value).startswith("refused: ")


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("git.corp.example", "a private address"),
        ("metadata.example", "a link-local address"),
        ("rebind.example", "a loopback address"),
        ("v6.example", "a private address"),
        ("mapped.example", "a private address"),
    ],
)
def test_the_policy_refuses_names_that_resolve_inside_without_saying_the_address(
    host: str, kind: str, internal_names
) -> None:
    with pytest.raises(RefusedDestination) as refused:
        OutboundPolicy().check(validate_url(f"https://{host}/x/y"))
    message = str(refused.value)
    assert message.startswith(f"refused: {host} resolves to {kind}")
    assert "MARLIN_ALLOWED_INTERNAL_GIT_HOSTS" in message
    # Internal DNS is not the author's to read.
    assert not any(part in message for part in ("10.20", "169.254", "127.0", "fd12", "192.168"))


def test_the_policy_gives_the_public_addresses_it_checked_for_git_to_use(resolver) -> None:
    resolver.names["github.com"] = ["140.82.112.3", "2606:50c0:8000::154"]
    policy = OutboundPolicy()
    assert policy.check(validate_url("https://github.com/a/b")) == [
        "140.82.112.3",
        "2606:50c0:8000::154",
    ]
    assert policy.check(validate_url("https://8.8.8.8/a/b")) == []  # an address: nothing to pin
    # One look-up per host, however many repositories it holds.
    policy.check(validate_url("git@github.com:a/c.git"))
    assert resolver.asked == ["github.com"]


def test_a_name_that_does_not_resolve_is_refused_with_the_name(internal_names) -> None:
    with pytest.raises(RefusedDestination, match="the host gone.example could not be resolved"):
        OutboundPolicy().check(validate_url("https://gone.example/a/b"))


def test_an_admin_allowed_internal_host_passes_without_a_look_up(internal_names, resolver) -> None:
    policy = OutboundPolicy(["Git.Corp.Example", "127.0.0.1"])
    assert policy.check(validate_url("https://git.corp.example/team/tool")) == []
    assert policy.check(validate_url("https://127.0.0.1:8443/team/tool")) == []
    assert resolver.asked == []
    with pytest.raises(RefusedDestination):  # only the hosts named
        policy.check(validate_url("https://127.0.0.2/team/tool"))


def test_look_ups_stop_after_the_budget_and_say_so(resolver) -> None:
    policy = OutboundPolicy(budget_seconds=0)
    time.sleep(0.01)
    with pytest.raises(RefusedDestination, match="took longer than 0 s"):
        policy.check(validate_url("https://git.example.org/a/b"))
    assert resolver.asked == []
    # Literal addresses need no look-up and are still judged.
    with pytest.raises(RefusedDestination, match="loopback"):
        policy.check(validate_url("https://127.0.0.1/a/b"))


def test_ipv6_addresses_that_carry_ipv4_are_judged_by_it() -> None:
    assert address_problem(ipaddress.ip_address("::ffff:10.0.0.1")) == "a private address"
    assert address_problem(ipaddress.ip_address("2002:a00:1::")) == "a private address"  # 6to4
    assert address_problem(ipaddress.ip_address("::ffff:140.82.112.3")) is None
    assert address_problem(ipaddress.ip_address("2606:50c0:8000::154")) is None


# --- through the interfaces an author uses -----------------------------------------------------


def _api_add(client, user, url: str):
    _, raw = ApiToken.issue(user, "tests")
    return client.post(
        "/api/repositories",
        {"url": url, "mirror": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
def test_the_api_refuses_repository_urls_that_point_at_internal_services(
    url: str, reason: str, db, dave, client, tasks_immediate, git_log: Path
) -> None:
    response = _api_add(client, dave, url)
    assert response.status_code == 422, response.content
    assert reason in response.json()["detail"]
    assert not Repository.objects.exists()
    assert not AuditEvent.objects.filter(verb="repository.add").exists()
    assert not git_log.exists()  # nothing connected anywhere


@pytest.mark.parametrize(
    "host", ["git.corp.example", "metadata.example", "rebind.example", "mapped.example"]
)
def test_the_api_refuses_names_whose_dns_points_inside(
    host: str, internal_names, db, dave, client, tasks_immediate, git_log: Path
) -> None:
    response = _api_add(client, dave, f"https://{host}/x/y")
    assert response.status_code == 422
    assert f"refused: {host} resolves to" in response.json()["detail"]
    assert not Repository.objects.exists() and not git_log.exists()


def test_the_add_page_says_why_an_internal_url_is_refused(db, dave, client_for) -> None:
    response = client_for(dave).post(
        reverse("catalog:add"), {"url": "https://0x7f000001:6379/x/y", "mirror": "on"}
    )
    assert response.status_code == 200
    assert "0x7f000001 (127.0.0.1) is a loopback address" in response.content.decode()
    assert not Repository.objects.exists()


def test_the_command_line_refuses_an_internal_url(db, erin) -> None:
    with pytest.raises(CommandError, match=r"\[::ffff:127.0.0.1\] is a loopback address"):
        call_command("repos", "add", "https://[::ffff:127.0.0.1]:5432/x/y", "--no-mirror")
    assert not Repository.objects.exists()


def test_an_import_reports_each_internal_url_with_its_line_number(
    internal_names, db, dave, client
) -> None:
    text = "\n".join(
        [
            "https://github.com/a/good",
            "https://127.0.0.1:5432/x/y",
            "https://git.corp.example/team/tool",
            "git@169.254.169.254:x/y",
            "https://gone.example/a/b",
            "https://github.com/a/good2",
        ]
    )
    _, raw = ApiToken.issue(dave, "tests")
    response = client.post(
        "/api/repositories/import",
        {"text": text, "filename": "list.txt", "mirror": False},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == 2
    bad = {b["line"]: b["reason"] for b in body["bad"]}
    assert sorted(bad) == [2, 3, 4, 5]
    assert "127.0.0.1 is a loopback address" in bad[2]
    assert "git.corp.example resolves to a private address" in bad[3]
    assert "169.254.169.254 is a link-local address" in bad[4]
    assert "could not be resolved" in bad[5]
    assert sorted(Repository.objects.values_list("name", flat=True)) == ["a/good", "a/good2"]


def test_an_admin_allowed_internal_git_server_can_be_added(
    internal_names, db, dave, client, settings
) -> None:
    settings.ALLOWED_INTERNAL_GIT_HOSTS = ["git.corp.example"]
    response = _api_add(client, dave, "https://git.corp.example/team/tool")
    assert response.status_code == 201, response.content
    assert Repository.objects.get().host == "git.corp.example"


# --- right before git connects -----------------------------------------------------------------


def test_the_mirror_job_checks_the_address_again_when_dns_changed(
    db, erin, resolver, git_log: Path
) -> None:
    resolver.names["flip.example"] = ["140.82.112.9"]
    repo = do_add_repository(erin, "https://flip.example/team/tool", mirror=False)
    resolver.names["flip.example"] = ["10.9.8.7"]  # the attacker's DNS now answers inside
    mirror_repository.call(repo.pk)
    repo.refresh_from_db()
    assert repo.mirror_status == MirrorStatus.FAILED
    assert repo.last_error.startswith("refused: flip.example resolves to a private address")
    assert not git_log.exists(), "git must not run for a refused host"


def test_the_mirror_job_refuses_a_url_edited_to_an_internal_address(
    db, erin, git_log: Path
) -> None:
    repo = do_add_repository(erin, "https://github.com/owner/name", mirror=False)
    Repository.objects.filter(pk=repo.pk).update(url="https://2130706433:6379/owner/name")
    mirror_repository.call(repo.pk)
    repo.refresh_from_db()
    assert repo.mirror_status == MirrorStatus.FAILED and "loopback" in repo.last_error
    assert not git_log.exists()


# --- bounded, and quiet about what answered ----------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))  # git (run by the job) trusts it
    return cert, key


@pytest.fixture
def loopback_allowed(settings) -> None:
    settings.ALLOWED_INTERNAL_GIT_HOSTS = ["127.0.0.1"]


def _mirror(erin, url: str) -> Repository:
    repo = do_add_repository(erin, url, mirror=False)
    mirror_repository.call(repo.pk)
    repo.refresh_from_db()
    return repo


def test_a_silent_server_is_given_up_at_the_overall_timeout_and_gits_helpers_die(
    db, erin, settings, loopback_allowed, silent_server: SilentServer
) -> None:
    settings.GIT_TIMEOUT_SECONDS = 2
    started = time.monotonic()
    repo = _mirror(erin, silent_server.url())
    assert time.monotonic() - started < 15
    assert silent_server.accepted.is_set(), "git never connected"
    assert repo.mirror_status == MirrorStatus.FAILED
    assert repo.last_error == "git clone timed out after 2 s"
    # git-remote-https held the connection; killing git's process group closed it.
    assert silent_server.hung_up.wait(timeout=5)
    assert not mirror_path_for(repo).exists()


def test_a_server_that_stalls_mid_transfer_is_stopped_by_the_low_speed_limit(
    db, erin, settings, loopback_allowed, certificate
) -> None:
    settings.GIT_TIMEOUT_SECONDS = 60
    settings.GIT_LOW_SPEED_SECONDS = 2
    headers = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n"
        b"Content-Length: 100000\r\n\r\n001e# service=git-upload-pack\n"
    )
    server = TLSServer(*certificate, headers, stall=True)
    try:
        started = time.monotonic()
        repo = _mirror(erin, server.url())
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert server.requests, "git never asked"
    assert repo.mirror_status == MirrorStatus.FAILED
    assert repo.last_error == "git clone failed: the transfer was slower than 1000 bytes/s for 2 s"
    assert elapsed < 20, f"took {elapsed:.1f} s: the low-speed limit did not apply"


def test_a_redirect_is_not_followed(db, erin, loopback_allowed, certificate) -> None:
    target = SilentServer()  # where the redirect points: it must never see a connection
    answer = (
        f"HTTP/1.1 301 Moved\r\nLocation: https://127.0.0.1:{target.port}/x/y/info/refs"
        "?service=git-upload-pack\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    server = TLSServer(*certificate, answer, stall=False)
    try:
        repo = _mirror(erin, server.url())
    finally:
        server.stop()
        target.stop()
    assert server.requests
    assert target.connections == 0
    assert repo.mirror_status == MirrorStatus.FAILED
    assert "redirect" in repo.last_error


def test_a_closed_port_and_an_open_one_that_is_no_git_server_fail_alike(
    db, erin, loopback_allowed
) -> None:
    plain = PlainServer()
    closed = SilentServer()
    closed_url = closed.url("a/closed")
    closed.stop()  # nothing listens there any more
    try:
        open_repo = _mirror(erin, plain.url("a/open"))
    finally:
        plain.stop()
    closed_repo = _mirror(erin, closed_url)
    assert plain.connections >= 1
    assert open_repo.mirror_status == closed_repo.mirror_status == MirrorStatus.FAILED
    assert open_repo.last_error == closed_repo.last_error
    assert open_repo.last_error.startswith("git clone failed: no git server answered")
    for word in ("port", "refused:", "ssl", "tls", "wrong version", "couldn't connect"):
        assert word not in open_repo.last_error.lower()
