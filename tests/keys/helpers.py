"""Waiting for real asynchronous work (the Celery worker, the simulator) with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, what: str, timeout: float = 15.0) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline.
    Real time (monotonic), which time-machine leaves alone, so a frozen or moved clock can't
    make it wait forever."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
