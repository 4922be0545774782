"""Repository URL validation and normalisation. Plain Python: no Django, no git.

Every URL that will ever reach git passes through `validate_url` first. What is accepted:

- `https://host[:port]/owner/name[.git]`
- `ssh://[user@]host[:port]/path`
- scp-like `[user@]host:owner/name[.git]`
- absolute paths of existing directories, or `file://` URLs, only with `allow_local=True`.

Deliberately rejected, each with a reason a person can act on: anything git could read as an
option (a leading `-`, also in the host, user or a path segment), the `transport::address` forms
(`ext::` runs a command, `fd::` reads a descriptor), plain `http://` and `git://` (no integrity or
authentication, so a network attacker can substitute the code that experts will judge),
credentials in the URL (they would be stored in the database and shown in pages and logs),
query strings and fragments, whitespace and control characters.

`OutboundPolicy` then decides where git may connect: a network URL's host, after resolving, must
not be a loopback, private, link-local (cloud metadata), multicast, reserved or unspecified
address, in any spelling (IPv6, IPv4-mapped IPv6, `0x7f000001`, `2130706433`, `127.1`), unless an
administrator named the host as an internal git server. It runs when a URL is added or imported
and again right before git connects, because DNS answers change.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# resolve_host is imported so that it is this module's attribute: the policy looks it up here at
# call time, and tests put a table in its place.
from marlin.sandbox.addresses import (
    IPAddress,
    Resolver,
    address_problem,
    bare_host,
    literal_address,
    resolve_host,
)

MAX_URL_LENGTH = 500

# git treats `<letters, digits, + - .>::<address>` as "use the remote helper git-remote-<name>".
_TRANSPORT_RE = re.compile(r"^[A-Za-z0-9+.\-]*::")
_BAD_CHAR_RE = re.compile(r"[\s\x00-\x1f\x7f]")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:@]+):(?P<path>.*)$")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?$")
_IPV6_RE = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_USER_RE = re.compile(r"^[A-Za-z0-9._~][A-Za-z0-9._~\-]*$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~+@%\-]+$")
# Hosts whose owner/name paths are case-insensitive, so case must not make two catalog rows.
_CASE_INSENSITIVE_HOSTS = frozenset({"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"})


class InvalidRepositoryURL(ValueError):
    """The URL must not be given to git; the message says why and what to do."""


class RefusedDestination(InvalidRepositoryURL):
    """The URL is well formed but git must not connect where it points."""


@dataclass(frozen=True)
class RepositoryURL:
    url: str  # what git will be given (for local repositories: the resolved absolute path)
    normalized: str  # de-duplication key, e.g. "github.com/owner/name"
    host: str  # lower-case; "" for local repositories
    name: str  # "owner/name" as written (last two path segments, without .git)
    is_local: bool
    connect_host: str = ""  # the host git connects to, lower-case ("www." kept; [..] for IPv6)
    port: int | None = None


def validate_url(url: str, *, allow_local: bool = False) -> RepositoryURL:
    """Check `url` and describe it, or raise InvalidRepositoryURL saying what is wrong."""
    if not isinstance(url, str) or url == "":
        raise InvalidRepositoryURL("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRepositoryURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if url.startswith("-"):
        raise InvalidRepositoryURL(
            "the URL starts with '-', which git would read as an option (option injection)"
        )
    if _TRANSPORT_RE.match(url):
        transport = url.split("::", 1)[0] or "(empty)"
        raise InvalidRepositoryURL(
            f"'{transport}::' remote-helper URLs are not allowed (they can run commands); "
            "use an https:// or ssh:// URL"
        )
    if _BAD_CHAR_RE.search(url):
        raise InvalidRepositoryURL("the URL contains whitespace or a control character")
    scheme_match = _SCHEME_RE.match(url)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme == "https":
            return _validate_network(url, "https")
        if scheme == "ssh":
            return _validate_network(url, "ssh")
        if scheme == "file":
            return _validate_local(url[len("file://") :], allow_local, given=url)
        if scheme == "http":
            raise InvalidRepositoryURL(
                "plain http:// is not accepted (anyone on the network could change the code); "
                "use https://"
            )
        if scheme == "git":
            raise InvalidRepositoryURL(
                "git:// is not accepted (unauthenticated and unencrypted); use https:// or ssh://"
            )
        raise InvalidRepositoryURL(
            f"the '{scheme}://' scheme is not supported; use https://, ssh:// or user@host:path"
        )
    if url.startswith("/"):
        return _validate_local(url, allow_local, given=url)
    scp = _SCP_RE.match(url)
    if scp:
        return _validate_scp(scp.group("user"), scp.group("host"), scp.group("path"))
    raise InvalidRepositoryURL(
        "not a repository URL: use https://host/owner/name, ssh://host/path or user@host:owner/name"
    )


def normalize_url(url: str, *, allow_local: bool = False) -> str:
    """The de-duplication key of a valid URL (raises InvalidRepositoryURL for an invalid one)."""
    return validate_url(url, allow_local=allow_local).normalized


def _validate_network(url: str, scheme: str) -> RepositoryURL:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRepositoryURL(f"the URL cannot be parsed: {exc}") from None
    if parts.password is not None or (scheme == "https" and parts.username is not None):
        raise InvalidRepositoryURL(
            "credentials must not be part of the URL (they would be stored and shown); "
            "configure them in a git credential helper or an SSH key for the worker instead"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidRepositoryURL("the URL must not contain '?' or '#'")
    user = parts.username
    if user is not None:
        _check_user(user)
    netloc_host = parts.netloc.rsplit("@", 1)[-1]
    host = _host_of(netloc_host, port)
    # Ports do not distinguish repositories in the key (ssh :22 and https :443 agree); they are
    # kept for connecting.
    return _describe(host, parts.path, url, port=port)


def _validate_scp(user: str | None, host: str, path: str) -> RepositoryURL:
    if user is not None:
        _check_user(user)
    host = _check_host(host)
    url = f"{user + '@' if user else ''}{host}:{path}"
    return _describe(host, path, url, port=None)


def _check_user(user: str) -> None:
    if not user:
        raise InvalidRepositoryURL("the user name before '@' is empty")
    if user.startswith("-"):
        raise InvalidRepositoryURL(
            "the user name starts with '-', which ssh would read as an option"
        )
    if ":" in user:
        raise InvalidRepositoryURL(
            "credentials must not be part of the URL; configure an SSH key for the worker instead"
        )
    if not _USER_RE.match(user):
        raise InvalidRepositoryURL(
            f"the user name {user!r} contains characters that are not allowed"
        )


def _host_of(netloc_host: str, port: int | None) -> str:
    host = netloc_host
    if port is not None or re.search(r":\d*$", host) and not host.endswith("]"):
        host = host.rsplit(":", 1)[0]
    return _check_host(host)


def _check_host(host: str) -> str:
    if not host:
        raise InvalidRepositoryURL("the host is empty")
    if host.startswith("-"):
        raise InvalidRepositoryURL("the host starts with '-', which ssh would read as an option")
    if not (_HOST_RE.match(host) or _IPV6_RE.match(host)):
        raise InvalidRepositoryURL(f"the host {host!r} is not a valid host name")
    return host.lower()


def _describe(connect_host: str, path: str, url: str, *, port: int | None) -> RepositoryURL:
    host = connect_host[4:] if connect_host.startswith("www.") else connect_host
    segments = [segment for segment in path.split("/") if segment != ""]
    if not segments:
        raise InvalidRepositoryURL("the URL names no repository path (expected owner/name)")
    for segment in segments:
        if segment.startswith("-"):
            raise InvalidRepositoryURL(
                f"the path segment {segment!r} starts with '-', "
                "which a git server could read as an option"
            )
        if segment in (".", ".."):
            raise InvalidRepositoryURL("the path must not contain '.' or '..' segments")
        if not _SEGMENT_RE.match(segment):
            raise InvalidRepositoryURL(
                f"the path segment {segment!r} contains characters that are not allowed"
            )
    segments[-1] = _strip_git(segments[-1])
    if not segments[-1]:
        raise InvalidRepositoryURL("the repository name is empty")
    key_path = "/".join(segments)
    if host in _CASE_INSENSITIVE_HOSTS:
        key_path = key_path.lower()
    return RepositoryURL(
        url=url,
        normalized=f"{host}/{key_path}",
        host=host,
        name="/".join(segments[-2:]),
        is_local=False,
        connect_host=connect_host,
        port=port,
    )


def _validate_local(path: str, allow_local: bool, *, given: str) -> RepositoryURL:
    if not allow_local:
        raise InvalidRepositoryURL(
            "local paths and file:// URLs are not allowed; an administrator can enable them "
            "with MARLIN_ALLOW_LOCAL_REPOSITORIES=1"
        )
    if not path.startswith("/"):
        raise InvalidRepositoryURL(f"{given!r} is not an absolute path; give the full path")
    resolved = Path(path).resolve()
    if not resolved.is_dir():
        raise InvalidRepositoryURL(f"{given!r} is not an existing directory")
    text = str(resolved)
    # A resolved absolute path starts with '/', so git can never read it as an option.
    name_parts = [part for part in resolved.parts if part != "/"]
    if not name_parts:
        raise InvalidRepositoryURL("the root directory is not a repository")
    name_parts[-1] = _strip_git(name_parts[-1]) or name_parts[-1]
    return RepositoryURL(
        url=text,
        normalized=f"local:{_strip_git(text) or text}",
        host="",
        name="/".join(name_parts[-2:]),
        is_local=True,
    )


def _strip_git(name: str) -> str:
    return name[: -len(".git")] if name.endswith(".git") else name


# --- Where git may connect ---------------------------------------------------------------------

# Looking up the hosts of one imported list stops after this long (a resolver that answers slowly
# must not hold the request); the lines whose host was not checked are reported as bad.
RESOLVE_BUDGET_SECONDS = 30.0
_ALLOW_HINT = (
    "an administrator can allow an internal git server by name with "
    "MARLIN_ALLOWED_INTERNAL_GIT_HOSTS"
)


class OutboundPolicy:
    """Whether git may connect to a repository URL's host. Local repositories (allowed by the
    administrator) and the hosts in `allowed_hosts` pass; any other host must be, or resolve
    only to, public addresses. One policy serves one request or one import: answers are kept
    per host, and name look-ups stop once `budget_seconds` have passed."""

    def __init__(
        self,
        allowed_hosts: Iterable[str] = (),
        *,
        resolve: Resolver | None = None,
        budget_seconds: float = RESOLVE_BUDGET_SECONDS,
    ) -> None:
        self.allowed_hosts = frozenset(_bare(h.strip().lower()) for h in allowed_hosts if h.strip())
        self._resolve = resolve
        self._budget = budget_seconds
        self._deadline = time.monotonic() + budget_seconds
        self._answers: dict[str, list[str] | str] = {}

    def check(self, parsed: RepositoryURL) -> list[str]:
        """The addresses the host resolved to (for git to use and nothing else), or raise
        RefusedDestination saying why git must not connect. Local repositories, allowed hosts
        and hosts written as addresses give [] (there is no name to pin)."""
        if parsed.is_local or _bare(parsed.connect_host) in self.allowed_hosts:
            return []
        host = parsed.connect_host
        if host not in self._answers:
            try:
                self._answers[host] = self._addresses(host)
            except RefusedDestination as exc:
                self._answers[host] = str(exc)
        answer = self._answers[host]
        if isinstance(answer, str):
            raise RefusedDestination(answer)
        return answer

    def _addresses(self, host: str) -> list[str]:
        literal = _literal_address(host)
        if literal is not None:
            problem = address_problem(literal)
            if problem:
                written_as_is = host.startswith("[") or host == str(literal)
                shown = host if written_as_is else f"{host} ({literal})"
                raise RefusedDestination(f"refused: {shown} is {problem}; {_ALLOW_HINT}")
            return []
        if time.monotonic() > self._deadline:
            raise RefusedDestination(
                f"not checked: looking up the hosts took longer than {self._budget:g} s; "
                "add this repository again"
            )
        resolve = self._resolve or resolve_host  # the module's, looked up now (see resolve_host)
        try:
            addresses = resolve(host)
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise RefusedDestination(f"refused: the host {host} could not be resolved")
        for text in addresses:
            problem = address_problem(ipaddress.ip_address(text))
            if problem:
                # The kind only, not the address: internal DNS is not the author's to read.
                raise RefusedDestination(f"refused: {host} resolves to {problem}; {_ALLOW_HINT}")
        return addresses


def _bare(host: str) -> str:
    return bare_host(host)


def _literal_address(host: str) -> IPAddress | None:
    try:
        return literal_address(host)
    except ValueError as exc:
        raise RefusedDestination(str(exc)) from None
