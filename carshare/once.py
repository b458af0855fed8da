"""Emails sent once, however often a task runs.

A task claims a Redis key with SET NX (cache.add) before sending, and gives it back if sending
failed in a way worth retrying (the task's autoretry then sends it). A worker dying between the
claim and the send loses that one email (at most once); everything else — a redelivered message,
the task running twice, a retry — sends it exactly once. Shared by bookings and keys.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from smtplib import SMTPException
from typing import Any

from django.core.cache import cache
from django.utils import timezone

# What may succeed next time: the tasks retry these (autoretry_for), nothing else.
MAIL_TRANSIENT = (SMTPException, ConnectionError, TimeoutError)
# Every email task's Celery options: retry only a transient mail failure, with backoff and
# jitter; acks_late, since each task claims its send (send_once or a marker) and a second
# delivery sends nothing.
EMAIL_TASK_OPTIONS: dict[str, Any] = {
    "autoretry_for": MAIL_TRANSIENT,
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": 6,
    "acks_late": True,
}
# How long a "sent" mark lives. Duplicates come from redelivery (within the broker's one-hour
# visibility timeout) and retries (hours at most); 90 days is far beyond both.
EMAIL_MARK_TTL = int(datetime.timedelta(days=90).total_seconds())


def send_once(mark: str, send: Callable[[], None]) -> bool:
    """Run `send` unless `mark` was claimed before; False when it was (sent already, or being
    sent by another delivery right now). A transient failure gives the claim back and re-raises."""
    if not cache.add(mark, timezone.now().isoformat(), timeout=EMAIL_MARK_TTL):
        return False
    try:
        send()
    except MAIL_TRANSIENT:
        cache.delete(mark)
        raise
    return True
