"""The Celery app (https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html)."""

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from typing import Any

from celery import Celery
from celery.signals import worker_ready
from kombu.asynchronous.hub import Hub

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carshare.settings")

app = Celery("carshare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# How many due ETA tasks a worker hands to its pool per turn of its event loop. kombu fires at
# most 10 (kombu.asynchronous.hub.Hub.fire_timers, max_timers=10) and then polls its sockets for
# up to a second before firing more. A thousand trips starting at 07:00:00 have a thousand
# unlocks staged for that second (keys.services.trip_unlock_stage): at 10 per turn they reached
# the thread pool over ~30 s, with the pool idle and the CPU to spare (measured: bench/README.md,
# "Trip start precision", Round 3). Firing every due timer at once lets the pool set the pace.
DUE_TIMERS_PER_TURN = 10_000


@worker_ready.connect
def fire_due_timers_together(sender: Any = None, **kwargs: Any) -> None:
    """On each worker's start (sender: its consumer), before its event loop begins."""
    hub = getattr(sender, "hub", None)
    if isinstance(hub, Hub):
        hub.fire_timers = functools.partial(  # type: ignore[method-assign]
            Hub.fire_timers, hub, max_timers=DUE_TIMERS_PER_TURN
        )


# Seconds the start-up waits for a thread pool's threads to come up (they do in well under one).
POOL_START_TIMEOUT_S = 30.0


@worker_ready.connect
def start_every_pool_thread(sender: Any = None, **kwargs: Any) -> None:
    """Start all of a thread pool's threads (the `vehicle` workers: -P threads -c 500) at start-up.

    Python's ThreadPoolExecutor starts a thread per task until it has max_workers, and each start
    waits for the new thread to run. At a thousand trips starting in one second, the event loop
    would start 500 threads one by one while the first ones already hold the GIL for their
    claims, and every command waits behind that; started now, the threads are idle and ready.
    """
    pool = getattr(sender, "pool", None)
    executor = getattr(pool, "executor", None)
    if pool is None or not isinstance(executor, ThreadPoolExecutor):
        return  # prefork or solo: nothing to start
    go = threading.Event()
    # Each task waits for `go`, so no thread is idle when the next one is submitted: the
    # executor starts a new thread for each, up to its limit.
    waiting = [executor.submit(go.wait, POOL_START_TIMEOUT_S) for _ in range(pool.limit)]
    go.set()
    wait_for_futures(waiting, timeout=POOL_START_TIMEOUT_S)
