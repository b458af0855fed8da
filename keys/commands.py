"""Commands under a key, as they go into vehicles' command outbox (vehicle_commands).

What a key allows at a moment (key_refusal, in the holder's words), the deadline a command
asked under it carries (key_deadline: ending or revoking the key withdraws it before then, so
the vehicle worker checks nothing but the command's row), and the system's own commands under a
key: the unlock at a trip's start and the end lock. The commands a person asks are keys.use.
"""

from __future__ import annotations

import datetime
from typing import TypedDict

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from keys.audit import audit_record
from keys.errors import KeyRefused, key_ended_message, local_time, trip_over_message
from keys.models import DigitalKey, KeyStatus
from vehicles import commands as vehicle_commands
from vehicles.cloud import outbox
from vehicles.models import CommandAction, CommandReason, VehicleCommand

K = KeyStatus


def key_refusal(*, key: DigitalKey, action: str, now: datetime.datetime) -> KeyRefused | None:
    """Why this key cannot `action` the car at `now` (None: it can), in the holder's words.

    The car (its time zone) is read only to word a refusal: the worker's last check before
    every trip-start unlock mostly finds nothing to refuse."""
    if key.status in (K.REVOKED, K.EXPIRED):
        return KeyRefused("key_not_active", key_ended_message(key.status))
    if now < key.valid_from:
        return KeyRefused(
            "key_not_active",
            _("This key works from %(at)s.") % {"at": local_time(key.car, key.valid_from)},
        )
    if action == CommandAction.UNLOCK and now >= key.valid_until:
        if now < key.lock_until:
            return KeyRefused("key_not_active", trip_over_message(key.car, key.lock_until))
        return KeyRefused("key_not_active", key_ended_message(K.EXPIRED))
    if action == CommandAction.LOCK and now >= key.lock_until:
        return KeyRefused("key_not_active", key_ended_message(K.EXPIRED))
    return None  # issued keys inside their window are opened on first use (car_command_request)


def start_retry_window() -> datetime.timedelta:
    """How long after a trip's start its unlock keeps trying a car that cannot be reached."""
    return datetime.timedelta(minutes=settings.TRIP_START_RETRY_MINUTES)


class KeyDeadline(TypedDict, total=False):
    """vehicle_command_enqueue's deadline arguments (none for an end lock)."""

    not_after: datetime.datetime
    late_message: str


def key_deadline(key: DigitalKey, action: str) -> KeyDeadline:
    """The command's own deadline under this key: the end of its window for `action`, and
    the words for a press still queued then (revoking or expiring the key withdraws it)."""
    at = key.valid_until if action == CommandAction.UNLOCK else key.lock_until
    refusal = key_refusal(key=key, action=action, now=at)
    return {"not_after": at, "late_message": str(refusal) if refusal else ""}


def system_command(
    *,
    key: DigitalKey,
    action: str,
    reason: str,
    not_before: datetime.datetime | None = None,
) -> VehicleCommand | None:
    """The trip clock's unlock at the start (or an end lock), inside the caller's transaction;
    `not_before` stages it for that moment. A car that lost its connection is recorded as a
    denied attempt, never an exception that would undo the trip's move. An end lock has no
    deadline; the unlock at the start goes only inside the key's window."""
    deadline: KeyDeadline = {} if reason in outbox.END_LOCK_REASONS else key_deadline(key, action)
    # The unlock at a trip's start keeps trying a car that cannot be reached for a while: the
    # renter is on the way or at the car (vehicles.cloud.sending, the start window).
    retry_until = None
    if reason == CommandReason.TRIP_START:
        retry_until = (not_before or timezone.now()) + start_retry_window()
    try:
        command = vehicle_commands.vehicle_command_enqueue(
            car_id=key.car_id,
            action=action,
            reason=reason,
            actor=None,
            key_id=key.pk,
            not_before=not_before,
            retry_until=retry_until,
            **deadline,
        )
    except vehicle_commands.CommandRefused as error:
        audit_record(
            car_id=key.car_id,
            key=key,
            actor=None,
            action=action,
            code=error.code,
            detail=str(error),
            via="system",
        )
        return None
    audit_record(
        car_id=key.car_id,
        key=key,
        actor=None,
        action=action,
        via="system",
        detail=reason,
        command_public_id=command.public_id,
        # Asked now, due then: the log keeps both (and shows when the car confirmed it).
        staged_for=not_before if not_before is not None and not_before > timezone.now() else None,
    )
    return command
