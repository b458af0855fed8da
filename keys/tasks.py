"""Celery tasks of keys: the key clock and the end-lock sweep.

The database says what is due; the broker is a doorbell. Every task takes ids by keyword, re-reads
its rows and leaves when the work is done or no longer wanted, so running twice changes nothing.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

# tasks_email: Celery's autodiscovery imports keys.tasks only, so importing the email tasks here
# registers them in every worker too. They sit in a module of their own, below the services that
# queue them; these tasks sit above the services they call.
from keys import endlocks, lifecycle, startunlocks, tasks_email  # noqa: F401

log = logging.getLogger(__name__)


@shared_task
def run_key_clock() -> None:
    """Every KEY_CLOCK_SWEEP_S from CELERY_BEAT_SCHEDULE: open windows that have started, lock
    cars at the end of service windows, expire keys past their grace, and look after every end
    lock not yet confirmed and every started trip whose car has not opened yet. ETA tasks give precision; this catches whatever they missed."""
    now = timezone.now()
    due = lifecycle.keys_due(now=now)
    for key_id in due["activate"]:
        lifecycle.key_activate(key_id=key_id)
    for key_id in due["end_service"]:
        lifecycle.service_window_end(key_id=key_id)
    for key_id in due["expire"]:
        lifecycle.key_expire(key_id=key_id)
    for key_id, ends_at in due["end_service_soon"]:
        end_service_window.apply_async(kwargs={"key_id": key_id}, eta=ends_at)
    for end_lock_id in endlocks.end_locks_pending():
        endlocks.end_lock_check(end_lock_id=end_lock_id)
    startunlocks.start_unlocks_settle_opened(now=now)
    for start_unlock_id in startunlocks.start_unlocks_due(now=now):
        startunlocks.start_unlock_check(start_unlock_id=start_unlock_id)
    startunlocks.start_unlocks_stuck(now=now)


@shared_task(acks_late=True)
def activate_key(key_id: int) -> None:
    """ETA task at a key's window opening (scheduled only when it is less than an hour away)."""
    lifecycle.key_activate(key_id=key_id)


@shared_task(acks_late=True)
def end_service_window(key_id: int) -> None:
    """ETA task at the end of a service window: lock the car (once, however often it runs)."""
    lifecycle.service_window_end(key_id=key_id)
