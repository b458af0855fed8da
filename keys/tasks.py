"""Celery tasks of keys: the key clock, the end-lock sweep and the emails.

The database says what is due; the broker is a doorbell. Every task takes ids by keyword, re-reads
its rows and leaves when the work is done or no longer wanted, so running twice changes nothing.
"""

from __future__ import annotations

import datetime
import logging
from smtplib import SMTPException

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from keys import endlocks, notifications, services

log = logging.getLogger(__name__)
MAIL_TRANSIENT = (SMTPException, ConnectionError, TimeoutError)
EMAIL_MARK_TTL = int(datetime.timedelta(days=90).total_seconds())


@shared_task
def run_key_clock() -> None:
    """Every KEY_CLOCK_SWEEP_S from CELERY_BEAT_SCHEDULE: open windows that have started, lock
    cars at the end of service windows, expire keys past their grace, and look after every end
    lock not yet confirmed. ETA tasks give precision; this catches whatever they missed."""
    now = timezone.now()
    due = services.keys_due(now=now)
    for key_id in due["activate"]:
        services.key_activate(key_id=key_id)
    for key_id in due["end_service"]:
        services.service_window_end(key_id=key_id)
    for key_id in due["expire"]:
        services.key_expire(key_id=key_id)
    for key_id, ends_at in due["end_service_soon"]:
        end_service_window.apply_async(kwargs={"key_id": key_id}, eta=ends_at)
    for end_lock_id in endlocks.end_locks_pending():
        endlocks.end_lock_check(end_lock_id=end_lock_id)


@shared_task(acks_late=True)
def activate_key(key_id: int) -> None:
    """ETA task at a key's window opening (scheduled only when it is less than an hour away)."""
    services.key_activate(key_id=key_id)


@shared_task(acks_late=True)
def end_service_window(key_id: int) -> None:
    """ETA task at the end of a service window: lock the car (once, however often it runs)."""
    services.service_window_end(key_id=key_id)


def _claim(mark: str) -> bool:
    return bool(cache.add(mark, timezone.now().isoformat(), timeout=EMAIL_MARK_TTL))


@shared_task(
    autoretry_for=MAIL_TRANSIENT,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
)
def send_key_email(key_id: int, kind: str) -> None:
    """Tell a co-driver or technician that they were given a key (or that it was revoked)."""
    mark = f"keys:email:{key_id}:{kind}"
    if not _claim(mark):
        return  # sent already (a redelivered message)
    try:
        notifications.send_key_email(key_id=key_id, kind=kind)
    except MAIL_TRANSIENT:
        cache.delete(mark)  # give the claim back so the retry sends it
        raise


@shared_task(
    autoretry_for=MAIL_TRANSIENT,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
)
def send_end_lock_alert(end_lock_id: int, number: int) -> None:
    """Alert `number` (1, 2, ...) that a car would not lock at the end of its window, to the
    owner, the key holder and the admins; number 0 says it is locked now. Once each."""
    for recipient in notifications.end_lock_recipients(end_lock_id=end_lock_id):
        mark = f"keys:endlock:{end_lock_id}:{number}:{recipient}"
        if not _claim(mark):
            continue
        try:
            notifications.send_end_lock_alert(
                end_lock_id=end_lock_id, number=number, recipient=recipient
            )
        except MAIL_TRANSIENT:
            cache.delete(mark)
            raise
