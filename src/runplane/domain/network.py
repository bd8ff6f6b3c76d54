"""Which network addresses runplane may reach on a user's behalf (webhooks, browser runs)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetworkPolicy(StrEnum):
    """What a browser run may load."""

    #: Anything, this machine included (tests, demos, a trusted network).
    ANY = "any"
    #: Public and private-range (RFC 1918, ULA) addresses: internal staging sites, but
    #: never this machine (loopback) or link-local (cloud metadata services).
    PRIVATE = "private"
    #: Public addresses only.
    PUBLIC = "public"


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why runplane must not connect to ``ip`` (None: allowed)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1.
        ip = ip.ipv4_mapped
    for flag, what in (
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
    ):
        if flag:
            return f"{ip} is a {what} address"
    if allow_private:
        return None
    for flag, what in ((ip.is_private, "private"), (ip.is_reserved, "reserved")):
        if flag:
            return f"{ip} is a {what} address"
    if not ip.is_global:
        # Shared address space (100.64/10), benchmarking ranges and the like.
        return f"{ip} is not a public address"
    return None


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_localhost_name(host: str) -> bool:
    """RFC 6761: these names always mean this machine; no resolution needed to refuse them."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")
