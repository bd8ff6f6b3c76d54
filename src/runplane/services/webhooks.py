"""Webhook deliveries of finished runs (the Tester Army dialect): signing, URL safety, delivery.

A delivery is a row (``store.webhooks``), so it survives restarts; any number of
deliverers (tasks of one process or several hosts on one PostgreSQL) may poll the
same table: each attempt is made under an exclusive, expiring claim, and a retry is
just the row becoming due again at ``next_attempt_at`` (no in-process sleeping).
Delivery is at-least-once: a deliverer that dies after the POST but before recording
it lets the claim expire and the delivery is sent again; receivers deduplicate on
``X-Runplane-Delivery`` (``<delivery id>.<generation>``: a run restarted in place
reports again under a new key).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from runplane import __version__
from runplane.domain.errors import InvalidInput
from runplane.domain.network import IPAddress, address_problem, is_localhost_name, literal_ip
from runplane.services.context import Context
from runplane.store import webhooks as store
from runplane.store.database import unit_of_work
from runplane.store.models import utcnow

log = logging.getLogger(__name__)

EVENT = "run.completed"
SIGNATURE_HEADER = "X-Runplane-Signature"
DELIVERY_HEADER = "X-Runplane-Delivery"
EVENT_HEADER = "X-Runplane-Event"
USER_AGENT = f"runplane-webhooks/{__version__}"
#: Column size of ``webhook_deliveries.url``.
MAX_URL_LENGTH = 2000
#: Attempts made at once by one deliverer (each may wait up to the timeout).
DEFAULT_CONCURRENCY = 8
#: A claim covers the attempt's timeout plus this, for rendering and recording the
#: outcome; a deliverer that dies mid-attempt delays its deliveries by at most that.
CLAIM_MARGIN_SECONDS = 30.0
_FIELD = "webhookUrl"
_DEFAULT_PORTS = {"http": 80, "https": 443}


# ---- signing ---------------------------------------------------------------------------


def webhook_signing_key(ctx: Context) -> bytes:
    """``webhook_secret`` when configured, else a key derived from the server's secret key.

    Derived (not the secret key itself) so that handing the webhook key to a receiver
    reveals nothing that signs API tokens or seals credentials.
    """
    if ctx.settings.webhook_secret:
        return ctx.settings.webhook_secret.encode()
    derived = hmac.new(ctx.secret_key, b"runplane-webhook-signing", hashlib.sha256).hexdigest()
    return derived.encode()


def _digest(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Runplane-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""
    return f"t={timestamp},v1={_digest(key, timestamp, body)}"


def verify_signature(
    key: bytes,
    header_value: str,
    body: bytes,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """Whether ``header_value`` signs ``body`` with ``key`` within ``tolerance_seconds``.

    The timestamp is signed too, so the tolerance bounds replays of a captured
    delivery. Several ``v1=`` entries are accepted (any may match), for key rotation.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header_value.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(key, timestamp, body)
    # Compare every candidate (no early exit) in constant time.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched


# ---- URL safety ------------------------------------------------------------------------


class _Forbidden(Exception):
    """The URL may not be delivered to; no retry can change that (until DNS changes)."""


def _invalid(reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid webhook URL: {reason}", {_FIELD: reason})


def _parse(url: str) -> httpx.URL:
    """Syntax rules: http(s), a host, no credentials, a sane length."""
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise _invalid(f"is not a valid URL ({exc})") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        raise _invalid("must use http or https")
    if not parsed.host:
        raise _invalid("must have a host")
    if parsed.userinfo:
        # Credentials in the URL would be stored and logged in clear; the signature
        # is how a receiver authenticates us.
        raise _invalid("must not contain credentials")
    return parsed


async def _resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """Every address ``host`` resolves to (the resolver blocks: run it in a thread)."""
    infos = await asyncio.wait_for(
        asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM), timeout
    )
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = literal_ip(str(sockaddr[0]))
        if ip is not None and ip not in found:
            found.append(ip)
    if not found:
        raise OSError(f"{host} resolved to no address")
    return found


async def _public_addresses(parsed: httpx.URL, timeout: float) -> list[IPAddress]:
    """The host's addresses, all public; raises ``_Forbidden`` or (DNS failure) ``OSError``."""
    host = parsed.host
    literal = literal_ip(host)
    if literal is not None:
        addresses = [literal]
    elif is_localhost_name(host):
        raise _Forbidden(f"{host} is this machine")
    else:
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        addresses = await _resolve(parsed.raw_host.decode("ascii"), port, timeout)
    for ip in addresses:
        problem = address_problem(ip)
        if problem is not None:
            # One private answer is enough: the connection could pick it.
            # For a name, say only that it is internal: the address would map the network.
            raise _Forbidden(problem if literal is not None else f"{host} is an internal host")
    return addresses


async def check_webhook_url(url: str, *, allow_private: bool, timeout: float = 10.0) -> str:
    """Validate a webhook URL given by a user; returns it, or raises ``InvalidInput``.

    Without ``allow_private`` the host must be (or resolve only to) public addresses,
    so webhooks cannot be used to reach the server's own network. The check is
    repeated at delivery time, since DNS answers may change.
    """
    url = url.strip()
    parsed = _parse(url)
    if not allow_private:
        try:
            await _public_addresses(parsed, timeout)
        except _Forbidden as exc:
            raise _invalid(f"must not point to a private network ({exc})") from None
        except (OSError, TimeoutError):
            raise _invalid(f"host {parsed.host} could not be resolved") from None
    return url


@dataclass(frozen=True, slots=True)
class _Target:
    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]


def _pinned(parsed: httpx.URL, ip: IPAddress) -> _Target:
    """Connect to the checked address itself, naming the host in Host and TLS SNI.

    Letting httpx resolve the name again would reopen the door the check closed
    (DNS rebinding: public answer for the check, private one for the connection).
    The certificate is still verified against the host name (``sni_hostname``).
    """
    host_header = parsed.netloc.decode("ascii")
    return _Target(
        url=parsed.copy_with(host=str(ip)),
        headers={"Host": host_header},
        extensions={"sni_hostname": parsed.raw_host.decode("ascii")}
        if parsed.scheme == "https"
        else {},
    )


async def _delivery_target(url: str, *, allow_private: bool, timeout: float) -> _Target:
    try:
        parsed = _parse(url)
    except InvalidInput as exc:
        raise _Forbidden(exc.message) from None
    if allow_private:
        return _Target(url=parsed, headers={}, extensions={})
    addresses = await _public_addresses(parsed, timeout)
    return _pinned(parsed, addresses[0])


# ---- delivery --------------------------------------------------------------------------


Render = Callable[[int], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    run_id: int
    url: str
    #: Attempts made before this one.
    attempts: int
    #: The value written into ``claimed_until``: the claim's fencing token.
    until: datetime
    #: How often the run was restarted: part of the delivery id receivers deduplicate on.
    generation: int = 0

    @property
    def delivery_key(self) -> str:
        return f"{self.id}.{self.generation}"


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    #: False: retrying cannot help (forbidden address, vanished run).
    retry: bool = True


class _Aborted(Exception):
    """The deliverer is stopping: give the claim back, count nothing."""


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


class WebhookDeliverer:
    """Polls for due deliveries and POSTs each run object, signed, to its URL."""

    def __init__(
        self,
        ctx: Context,
        render: Render,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._ctx = ctx
        self._render = render
        self._concurrency = max(1, concurrency)
        settings = ctx.settings
        self._timeout = settings.webhook_timeout_seconds
        self._key = webhook_signing_key(ctx)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout),
            # A redirect could lead anywhere, including the private network.
            follow_redirects=False,
            # Proxy variables would make the address check meaningless.
            trust_env=False,
            # No pooled connections: a pinned connection to an address shared by two
            # hosts must never carry the other host's request (its TLS name differs).
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the loop --------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """One pass: claim up to ``concurrency`` due deliveries and attempt them at once."""
        claimed = await self._claim_due(self._concurrency)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._attempt(c, None) for c in claimed))
        return sum(results)

    async def run(self, stop: asyncio.Event) -> None:
        """Every ``webhook_poll_seconds`` until ``stop`` is set; errors are logged, not fatal.

        Attempts run as tasks so one slow receiver does not hold up the others; new
        deliveries are claimed only for free slots, so nothing waits under a claim.
        On stop, attempts still waiting for their receiver are abandoned (their claim
        released, no attempt counted); database writes are never interrupted.
        """
        in_flight: set[asyncio.Task[int]] = set()
        try:
            while not stop.is_set():
                free = self._concurrency - len(in_flight)
                if free > 0:
                    try:
                        for delivery in await self._claim_due(free):
                            task = asyncio.create_task(self._attempt(delivery, stop))
                            in_flight.add(task)
                            task.add_done_callback(in_flight.discard)
                    except Exception:
                        log.exception("webhook delivery pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._ctx.settings.webhook_poll_seconds)
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _claim_due(self, limit: int) -> list[_Claimed]:
        now = utcnow()
        async with unit_of_work(self._ctx.reads) as session:
            due = [d.id for d in await store.due_deliveries(session, now, limit)]
        if not due:
            return []
        until = now + timedelta(seconds=self._timeout + CLAIM_MARGIN_SECONDS)
        claimed: list[_Claimed] = []
        async with unit_of_work(self._ctx.sessions) as session:
            # Ascending ids: concurrent claimers lock rows in one order (no PG deadlock).
            for delivery_id in sorted(due):
                if not await store.claim(session, delivery_id, now, until):
                    continue  # another deliverer was faster
                # Re-read under the claim: a restart may have reset it since the query.
                row = await store.get(session, delivery_id)
                if row is not None:
                    claimed.append(
                        _Claimed(row.id, row.run_id, row.url, row.attempts, until, row.generation)
                    )
        return claimed

    # -- one attempt -----------------------------------------------------------------

    async def _attempt(self, delivery: _Claimed, abort: asyncio.Event | None) -> int:
        """Make one attempt and record it; returns 1 if an attempt was recorded, else 0."""
        try:
            try:
                outcome = await self._try(delivery, abort)
            except _Aborted:
                async with unit_of_work(self._ctx.sessions) as session:
                    await store.release(session, delivery.id, delivery.until)
                return 0
            await self._record(delivery, outcome)
            return 1
        except Exception:
            # The claim expires on its own; the delivery is retried then.
            log.exception("webhook delivery %s: attempt failed unexpectedly", delivery.id)
            return 0

    async def _try(self, delivery: _Claimed, abort: asyncio.Event | None) -> _Outcome:
        try:
            payload = await self._render(delivery.run_id)
        except Exception as exc:
            log.exception(
                "webhook delivery %s: rendering run %s failed", delivery.id, delivery.run_id
            )
            return _Outcome(ok=False, error=f"rendering the run failed: {_short(exc)}")
        if payload is None:
            return _Outcome(ok=False, error="the run no longer exists", retry=False)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        send = asyncio.ensure_future(self._send(delivery, body))
        if abort is None:
            return await send
        stopping = asyncio.ensure_future(abort.wait())
        try:
            await asyncio.wait({send, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if send.done():
            return send.result()
        # Only the network wait is cancelled here, never a transaction.
        send.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await send
        raise _Aborted

    async def _send(self, delivery: _Claimed, body: bytes) -> _Outcome:
        settings = self._ctx.settings
        try:
            # One deadline for the address check and the whole exchange: httpx's
            # timeout is per phase, so a trickling receiver could otherwise hold on.
            async with asyncio.timeout(self._timeout):
                target = await _delivery_target(
                    delivery.url,
                    allow_private=settings.webhook_allow_private,
                    timeout=self._timeout,
                )
                timestamp = int(time.time())
                headers = {
                    **target.headers,
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(self._key, timestamp, body),
                    DELIVERY_HEADER: delivery.delivery_key,
                    EVENT_HEADER: EVENT,
                }
                response = await self._client.post(
                    target.url, content=body, headers=headers, extensions=target.extensions
                )
        except _Forbidden as exc:
            return _Outcome(ok=False, error=f"forbidden address: {exc}"[:200], retry=False)
        except (TimeoutError, httpx.TimeoutException):
            return _Outcome(ok=False, error=f"timed out after {self._timeout:g}s")
        except (httpx.HTTPError, OSError) as exc:
            return _Outcome(ok=False, error=f"connection failed: {_short(exc)}")
        if 200 <= response.status_code < 300:
            return _Outcome(ok=True, status_code=response.status_code)
        return _Outcome(
            ok=False, status_code=response.status_code, error=f"HTTP {response.status_code}"
        )

    async def _record(self, delivery: _Claimed, outcome: _Outcome) -> None:
        settings = self._ctx.settings
        number = delivery.attempts + 1
        now = utcnow()
        next_attempt_at: datetime | None = None
        delivered_at: datetime | None = None
        if outcome.ok:
            state = store.DELIVERED
            delivered_at = now
        elif outcome.retry and number <= settings.webhook_retries:
            state = store.PENDING
            # The n-th retry waits backoff * 2**(n-1): 1 s, 2 s, 4 s by default.
            delay = settings.webhook_backoff_seconds * 2 ** (number - 1)
            next_attempt_at = now + timedelta(seconds=delay)
        else:
            state = store.FAILED
        async with unit_of_work(self._ctx.sessions) as session:
            recorded = await store.record_attempt(
                session,
                delivery.id,
                delivery.until,
                state=state,
                status_code=outcome.status_code,
                error=outcome.error,
                next_attempt_at=next_attempt_at,
                delivered_at=delivered_at,
            )
        if not recorded:
            log.warning("webhook delivery %s: claim lost, outcome dropped", delivery.id)
        elif state == store.FAILED:
            log.warning(
                "webhook delivery %s (run %s) failed after %d attempt(s): %s",
                delivery.id,
                delivery.run_id,
                number,
                outcome.error,
            )
