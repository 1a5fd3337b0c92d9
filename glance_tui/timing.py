"""How long something took, measured around the awaitable itself (gates run concurrently,
so the evaluation's wall time says nothing about which gate was slow)."""

from __future__ import annotations

import time
from typing import Awaitable, TypeVar

T = TypeVar("T")


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """``(result, seconds)`` of one awaitable."""
    start = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - start
