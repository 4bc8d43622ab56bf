"""The retry schedule of a webhook delivery: exponential waits that together span a fixed window."""

from __future__ import annotations

import random

JITTER = 0.2


def retry_delays(max_attempts: int, window_seconds: float) -> list[float]:
    """The nominal waits (seconds) between ``max_attempts`` attempts, ``max_attempts - 1`` values.

    Each wait doubles the previous one and together they sum to ``window_seconds``, so the last attempt
    happens about ``window_seconds`` after the first (15 attempts over 86400 s: from ~5 s up to ~12 h).
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if window_seconds <= 0:
        raise ValueError("window_seconds must be positive")
    count = max_attempts - 1
    if count == 0:
        return []
    # A geometric series: first * (2**count - 1) == window_seconds.
    first = window_seconds / (2**count - 1)
    return [first * 2**index for index in range(count)]


def next_delay(
    attempt: int, max_attempts: int, window_seconds: float, rng: random.Random | None = None
) -> float | None:
    """The wait after failed attempt number ``attempt`` (1-based), with ±20 % jitter.

    Returns ``None`` when that was the last attempt and the event belongs on the dead-letter list. The
    jitter spreads retries of many events that failed together (receiver outage) so they do not return
    in a single burst.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based and must be at least 1")
    delays = retry_delays(max_attempts, window_seconds)
    if attempt > len(delays):
        return None
    source = rng if rng is not None else random
    return delays[attempt - 1] * source.uniform(1 - JITTER, 1 + JITTER)
