"""Fixed-window rate limits (``limits``), with the numbers both dialects report.

The counters live in process memory by default: each API process has its own budget.
With ``RUNPLANE_REDIS_URL`` set they live in Redis, so every API process pointed at the
same Redis shares one budget per token (or IP); see :func:`make_rate_limiter`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError

if TYPE_CHECKING:
    import redis.asyncio

    from runplane.config import Settings

log = logging.getLogger(__name__)

#: Prefix of the counters' keys in Redis.
REDIS_KEY_PREFIX = "runplane-ratelimit"
#: Bounds on one Redis call, so an unreachable (not just refusing) server cannot hold a
#: request for long.
REDIS_TIMEOUT_SECONDS = 1.0
#: After a failed call, Redis is not asked again for this long: requests pass unlimited
#: at once instead of each waiting for its own failure.
RETRY_AFTER_FAILURE_SECONDS = 2.0
#: While the storage keeps failing, the warning is repeated at most this often.
WARN_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    window_seconds: int

    @property
    def retry_after(self) -> int:
        return max(1, self.reset_at - int(time.time()))

    def headers(self) -> dict[str, str]:
        reset_in = max(0, self.reset_at - int(time.time()))
        remaining = self.remaining if self.allowed else 0
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(self.reset_at),
            # The IETF draft pair, for clients that read the standard names.
            "RateLimit": f"limit={self.limit}, remaining={remaining}, reset={reset_in}",
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


class RateLimiter:
    """Counts hits per (bucket, key) in a ``limits`` storage (memory unless given one).

    When the storage fails (Redis unreachable, timing out, erroring), :meth:`hit` *fails
    open*: it logs a warning and returns ``None``, which the gate treats like disabled
    rate limits: the request goes on, with no rate-limit headers. Why:

    - failing closed would turn a Redis outage into a full API outage (every request a
      500 or a 429), for a protection whose purpose is to keep the API up;
    - the alternative fallback, a per-process memory budget, would silently multiply the
      budget by the number of processes and report numbers no process actually enforces;
    - omitting the headers keeps them truthful: a client is never told a ``remaining``
      that was not counted. Authentication, roles and scopes are unaffected.

    After a failure Redis is left alone for ``RETRY_AFTER_FAILURE_SECONDS`` (those
    requests fail open at once), then tried again; recovery is logged.
    """

    def __init__(self, storage: Storage | None = None) -> None:
        self._storage = storage or MemoryStorage()
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._down_until = 0.0
        self._failing = False
        self._last_warning = 0.0

    @property
    def storage(self) -> Storage:
        return self._storage

    async def hit(self, bucket: str, key: str, limit: int, window_seconds: int) -> Decision | None:
        """Count one hit; ``None`` when the storage failed and the hit was not counted."""
        now = time.monotonic()
        if now < self._down_until:
            return None
        item: RateLimitItem = RateLimitItemPerSecond(limit, window_seconds, namespace=bucket)
        try:
            allowed = await self._limiter.hit(item, key)
            stats = await self._limiter.get_window_stats(item, key)
        except (StorageError, OSError, TimeoutError) as exc:
            self._storage_failed(exc)
            return None
        if self._failing:
            self._failing = False
            log.warning("rate-limit storage is reachable again; rate limits apply again")
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, stats.remaining),
            reset_at=int(stats.reset_time),
            window_seconds=window_seconds,
        )

    def _storage_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + RETRY_AFTER_FAILURE_SECONDS
        if not self._failing or now - self._last_warning >= WARN_EVERY_SECONDS:
            log.warning(
                "rate-limit storage failed (%s: %s); requests pass without rate limits "
                "or rate-limit headers until it answers again",
                type(exc).__name__,
                exc,
            )
            self._last_warning = now
        self._failing = True

    async def aclose(self) -> None:
        """Close the storage's connections (a no-op for the memory storage)."""
        if isinstance(self._storage, RedisStorage) and isinstance(
            self._storage.bridge, RedispyBridge
        ):
            client = cast("redis.asyncio.Redis", self._storage.bridge.get_connection())
            await client.aclose()


def redis_storage_uri(url: str) -> str:
    """``redis://…`` (what users write) as the ``async+redis://…`` ``limits`` wants."""
    return url if url.startswith("async+") else f"async+{url}"


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """The memory limiter, or with ``settings.redis_url`` one whose budget is in Redis.

    Nothing is connected here: the first request does (and fails open if Redis is down).
    """
    if not settings.redis_url:
        return RateLimiter(MemoryStorage())
    storage = RedisStorage(
        redis_storage_uri(settings.redis_url),
        # limits.errors.StorageError for any redis error, caught in RateLimiter.hit.
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=REDIS_KEY_PREFIX,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )
    return RateLimiter(storage)
