"""When and how often a WeChat call is repeated: one policy, in one place.

Only failures WeChat itself calls transient are retried (a retryable
transport error, or a business error like SYSTEMERROR that asks for the very
same request again), and only for calls that are safe to repeat: queries,
closeorder and bills always; unifiedorder and refund only when the caller
opts in, since the same out_trade_no / out_refund_no makes a repeat harmless.
Rate-limit codes are not retried here: WeChat asks for a minute's pause,
which belongs to the caller, not to a sub-second backoff.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from .errors import ConfigError, RateLimitedError, RetryableBusinessError, TransportError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]

_WAIT_A_MINUTE = frozenset({"INVALID_REQ_TOO_MUCH", "FREQUENCY_LIMITED"})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff: base_delay·2^(n-1), at most max_delay.

    With ``jitter`` each delay is drawn from [d/2, d] so many servers that
    failed together do not retry together (``random`` is fine for timing;
    ids and nonces come from ``secrets``).
    """

    max_attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError("RetryPolicy.max_attempts must be an int >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigError("RetryPolicy delays must not be negative")

    def delay(self, attempt: int) -> float:
        """Pause after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        if self.jitter:
            return random.uniform(ceiling / 2, ceiling)
        return ceiling

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        if isinstance(exc, TransportError):
            return bool(exc.retryable)
        if isinstance(exc, RateLimitedError):  # V3 429, whatever its code
            return False
        if isinstance(exc, RetryableBusinessError):
            return exc.err_code not in _WAIT_A_MINUTE
        return False


NO_RETRY = RetryPolicy(max_attempts=1)


async def run_with_retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    enabled: bool = True,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or the cap is hit."""
    limit = policy.max_attempts if enabled else 1
    number = 1
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if number >= limit or not policy.is_retryable(exc):
                raise
        await sleep(policy.delay(number))
        number += 1
