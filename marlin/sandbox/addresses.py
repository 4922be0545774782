"""Which network addresses untrusted code, or git on its behalf, must never reach. Plain Python.

Shared by the catalog's `OutboundPolicy` (where git may connect) and the sandbox's egress proxy
(where an agent's connection may go): loopback, private, link-local (cloud metadata), multicast,
reserved and unspecified addresses are refused in every spelling (IPv6, IPv4-mapped IPv6, 6to4,
NAT64, `0x7f000001`, `2130706433`, `127.1`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

# Resolves a host name to its addresses (as text, IPv4 or IPv6); raises OSError when it cannot.
Resolver = Callable[[str], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# curl and getaddrinfo read a host whose last label is a number as an IPv4 address.
_NUMERIC_LABEL_RE = re.compile(r"^(?:0[xX][0-9A-Fa-f]*|[0-9]+)$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_KINDS: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "the unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address (where cloud metadata services answer)"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
)


def resolve_host(host: str) -> list[str]:
    """The system resolver's addresses for `host`. Callers look this module attribute up at call
    time, so that tests can put a table in its place and send no DNS query."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def address_problem(address: IPAddress) -> str | None:
    """What kind of address must not be reached `address` is ("a loopback address"), or None
    for a public one. IPv6 addresses that carry an IPv4 address are judged by it as well."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address_problem(address.ipv4_mapped)
        carried = [address.sixtofour]
        if address in _NAT64:
            carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in carried:
            problem = inner and address_problem(inner)
            if problem:
                return problem
    for attribute, kind in _KINDS:
        if getattr(address, attribute):
            return kind
    return None if address.is_global else "a non-public address"


def bare_host(host: str) -> str:
    """`[::1]` -> `::1`; names and IPv4 addresses unchanged."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as one means, in every spelling curl and the resolver accept
    (those of inet_aton: 127.1, 0x7f000001, 2130706433, 0177.0.0.1); None for a name. Raises
    ValueError for something that is neither (`1.2.3.999`, `[zz]`)."""
    if host.startswith("[") or ":" in host:
        try:
            return ipaddress.IPv6Address(bare_host(host))
        except ValueError:
            raise ValueError(f"refused: {host} is not a valid IPv6 address") from None
    labels = host.split(".")
    if not _NUMERIC_LABEL_RE.match(labels[-1]):
        return None
    numbers = [_ipv4_number(label) for label in labels]
    *head, last = numbers
    if (
        len(numbers) > 4
        or last is None
        or any(n is None or n > 255 for n in head)
        or last >= 256 ** (5 - len(numbers))
    ):
        raise ValueError(f"refused: {host} is neither a host name nor an IPv4 address")
    value = sum(n << (24 - 8 * i) for i, n in enumerate(head) if n is not None) + last
    return ipaddress.IPv4Address(value)


def _ipv4_number(label: str) -> int | None:
    if label[:2].lower() == "0x":
        digits = label[2:]
        return int(digits, 16) if digits else 0
    if not label.isdigit():
        return None
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8) if set(label) <= set("01234567") else None
    return int(label)
