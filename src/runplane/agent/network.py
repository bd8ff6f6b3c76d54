"""The browser's network policy: every request a page makes is checked before it is sent.

A browser run loads pages a user chose, and those pages load (or redirect to) whatever
they like; without this, a prompt could screenshot the worker's own services or a cloud
metadata endpoint. Requests are routed through ``guard``, which resolves the host and
aborts the request when an address is not allowed (``runplane.domain.network``).
Limits: WebSockets are not routed by Playwright, and the browser resolves names again
after the check (a rebinding DNS server could answer differently the second time).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Route

from runplane.domain.network import (
    NetworkPolicy,
    address_problem,
    is_localhost_name,
    literal_ip,
)

#: Schemes that never leave the browser.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about"})


async def _resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class NetworkGuard:
    """Decides per URL, caching each host's verdict for the run."""

    def __init__(self, policy: NetworkPolicy, log: Callable[[str], None]) -> None:
        self.policy = policy
        self.log = log
        self._verdicts: dict[str, str | None] = {}
        #: URLs refused so far, for error messages.
        self.blocked: list[str] = []

    async def problem(self, url: str) -> str | None:
        """Why ``url`` may not be loaded, or None."""
        if self.policy is NetworkPolicy.ANY:
            return None
        parts = urlsplit(url)
        if parts.scheme in _LOCAL_SCHEMES:
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{parts.scheme}: URLs are not allowed"
        host = parts.hostname
        if host not in self._verdicts:
            self._verdicts[host] = await self._host_problem(host)
        return self._verdicts[host]

    async def _host_problem(self, host: str) -> str | None:
        allow_private = self.policy is NetworkPolicy.PRIVATE
        if is_localhost_name(host):
            return f"{host} is this machine"
        ip = literal_ip(host)
        try:
            addresses = [ip] if ip is not None else [literal_ip(a) for a in await _resolve(host)]
        except OSError:
            return None  # the browser will fail the same way, with its own message
        for address in addresses:
            if address is not None:
                found = address_problem(address, allow_private=allow_private)
                if found is not None:
                    return found if ip is not None else f"{host} is an internal host"
        return None

    async def _route(self, route: Route) -> None:
        url = route.request.url
        problem = await self.problem(url)
        if problem is None:
            await route.continue_()
            return
        self.blocked.append(url)
        self.log(f"[agent] blocked {url}: {problem} (network policy {self.policy.value})")
        await route.abort("blockedbyclient")

    async def install(self, context: BrowserContext) -> None:
        if self.policy is not NetworkPolicy.ANY:
            await context.route("**/*", self._route)
