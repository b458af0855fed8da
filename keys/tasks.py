"""Celery tasks of keys: the key clock, the end-lock sweep and the emails.

The database says what is due; the broker is a doorbell. Every task takes ids by keyword, re-reads
its rows and leaves when the work is done or no longer wanted, so running twice changes nothing.
"""

from __future__ import annotations

import functools
import logging

from celery import shared_task
from django.utils import timezone

from carshare import once
from keys import endlocks, notifications, services

log = logging.getLogger(__name__)
MAIL_TRANSIENT = once.MAIL_TRANSIENT


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


@shared_task(
    autoretry_for=MAIL_TRANSIENT,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
)
def send_key_email(key_id: int, kind: str) -> None:
    """Tell a co-driver or technician that they were given a key (or that it was revoked)."""
    once.send_once(
        f"keys:email:{key_id}:{kind}",
        lambda: notifications.send_key_email(key_id=key_id, kind=kind),
    )


@shared_task(
    autoretry_for=MAIL_TRANSIENT,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
)
def send_share_invitation(key_id: int, email: str, remedy: str) -> None:
    """Tell someone a renter tried to share a trip key with them and what they need first
    (an account, a verified email, a licence). At most once per trip key and address, so
    pressing Share again does not flood a stranger's inbox."""
    once.send_once(
        f"keys:share-invite:{key_id}:{email.lower()}",
        lambda: notifications.send_share_invitation(key_id=key_id, email=email, remedy=remedy),
    )


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
        once.send_once(
            f"keys:endlock:{end_lock_id}:{number}:{recipient}",
            functools.partial(
                notifications.send_end_lock_alert,
                end_lock_id=end_lock_id,
                number=number,
                recipient=recipient,
            ),
        )
