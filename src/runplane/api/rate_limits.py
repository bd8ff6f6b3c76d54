"""Fixed-window rate limits (``limits``), with the numbers both dialects report."""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter


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
    def __init__(self, storage: Storage | None = None) -> None:
        self._limiter = FixedWindowRateLimiter(storage or MemoryStorage())

    async def hit(self, bucket: str, key: str, limit: int, window_seconds: int) -> Decision:
        item: RateLimitItem = RateLimitItemPerSecond(limit, window_seconds, namespace=bucket)
        allowed = await self._limiter.hit(item, key)
        stats = await self._limiter.get_window_stats(item, key)
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, stats.remaining),
            reset_at=int(stats.reset_time),
            window_seconds=window_seconds,
        )
