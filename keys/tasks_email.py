"""Celery tasks that send the key emails, each at most once however often it is delivered.

Apart from keys.tasks (the key clock) because the services that give keys, take them back and
lock cars at the end of a window queue these, while the key clock's tasks call those services:
here, below all of them, the emails need nothing of keys but keys.notifications. Their names
are the ones they had in keys.tasks, so an email queued under that name still goes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from celery import shared_task

from carshare import once
from keys import notifications


@shared_task(name="keys.tasks.send_key_email", **once.EMAIL_TASK_OPTIONS)
def send_key_email(key_id: int, kind: str) -> None:
    """Tell a co-driver or technician that they were given a key (or that it was revoked)."""
    once.send_once(
        f"keys:email:{key_id}:{kind}",
        lambda: notifications.send_key_email(key_id=key_id, kind=kind),
    )


@shared_task(name="keys.tasks.send_share_invitation", **once.EMAIL_TASK_OPTIONS)
def send_share_invitation(key_id: int, email: str, remedy: str) -> None:
    """Tell someone a renter tried to share a trip key with them and what they need first
    (an account, a verified email, a licence). At most once per trip key and address, so
    pressing Share again does not flood a stranger's inbox."""
    once.send_once(
        f"keys:share-invite:{key_id}:{email.lower()}",
        lambda: notifications.send_share_invitation(key_id=key_id, email=email, remedy=remedy),
    )


@shared_task(name="keys.tasks.send_end_lock_alert", **once.EMAIL_TASK_OPTIONS)
def send_end_lock_alert(end_lock_id: int, number: int) -> None:
    """Alert `number` (1, 2, ...) that a car would not lock at the end of its window, to the
    owner, the key holder and the admins; number 0 says it is locked now. Once each."""
    _each_once(
        f"keys:endlock:{end_lock_id}:{number}",
        notifications.end_lock_recipients(end_lock_id=end_lock_id),
        functools.partial(
            notifications.send_end_lock_alert, end_lock_id=end_lock_id, number=number
        ),
    )


@shared_task(**once.EMAIL_TASK_OPTIONS)
def send_start_unlock_alert(start_unlock_id: int, number: int) -> None:
    """Alert `number` (1, 2, ...) that a car would not open at the start of its trip, to the
    renter, the owner and the admins; number 0 says it opened. Once each."""
    _each_once(
        f"keys:startunlock:{start_unlock_id}:{number}",
        notifications.start_unlock_recipients(start_unlock_id=start_unlock_id),
        functools.partial(
            notifications.send_start_unlock_alert, start_unlock_id=start_unlock_id, number=number
        ),
    )


@shared_task(**once.EMAIL_TASK_OPTIONS)
def send_owner_at_car_request(start_unlock_id: int) -> None:
    """The renter is at the car and it will not open: ask the owner to unlock it. Once."""
    once.send_once(
        f"keys:startunlock:{start_unlock_id}:at-car",
        functools.partial(notifications.send_owner_at_car_request, start_unlock_id=start_unlock_id),
    )


@shared_task(**once.EMAIL_TASK_OPTIONS)
def send_support_case_email(case_id: int) -> None:
    """Tell every active admin that a renter is at a car that will not open. Once each."""
    _each_once(
        f"keys:supportcase:{case_id}",
        notifications.staff_recipients(),
        functools.partial(notifications.send_support_case_email, case_id=case_id),
    )


def _each_once(mark: str, recipients: list[str], send: Callable[..., None]) -> None:
    """`send(recipient=…)` to each recipient once, however often the task runs (a Redis mark
    per recipient: `mark` and the address)."""
    for recipient in recipients:
        once.send_once(f"{mark}:{recipient}", functools.partial(send, recipient=recipient))
