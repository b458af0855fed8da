"""The lock at the end of a trip or service window, until the car confirms it.

end_lock_begin() records an EndLock and a LOCK in the command outbox, in the transaction that
ends the window. The vehicle worker sends it (retrying rate limits and transient errors itself).
Every sweep of the key clock then looks at each pending end lock:

- the car confirmed a lock since the end (ours, or the owner's own) → locked; whoever was alerted
  hears that it is locked now. Only the car's own status read confirms a lock: a webhook saying
  "locked" prompts such a read but settles nothing, as its word alone is not enough to stop
  locking and alerting;
- the lock is still on its way → wait;
- it failed (DOOR_OPEN, UNREACHABLE, a spent retry budget, ...), expired, was superseded, or was
  accepted but the car never reported itself locked → send another LOCK every RETRY_EVERY, and
  alert the owner, the key holder and the admins at once, then again every ALERT_EVERY;
- another trip or service window started on the car, or its owner unlocked it since → handed
  over: that window's own end lock, or the owner, takes it from there.

Every step is a conditional update under a row lock (skip_locked), so two sweeps at once, or one
run twice, send one lock and one alert.
"""

from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from keys import commands as key_commands
from keys import tasks_email
from keys.models import DigitalKey, EndLock, EndLockStatus, KeyKind, KeyStatus
from vehicles.models import CommandAction, CommandReason, CommandStatus, VehicleCommand

log = logging.getLogger(__name__)
E = EndLockStatus
C = CommandStatus
RETRY_EVERY = datetime.timedelta(minutes=3)
ALERT_EVERY = datetime.timedelta(hours=1)
# An accepted lock the car has not reported as applied after this long counts as not locked.
UNCONFIRMED_AFTER = datetime.timedelta(minutes=2)


def end_lock_begin(*, key: DigitalKey, reason: str) -> EndLock:
    """Record the end lock and queue its first LOCK; inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("end_lock_begin() needs the calling service's transaction")
    existing = EndLock.objects.filter(key=key).first()
    if existing is not None:
        return existing
    now = timezone.now()
    # The row first, then its LOCK: the sweep counts locks requested since created_at, and the
    # first one must be among them.
    end_lock = EndLock.objects.create(
        key=key, car_id=key.car_id, attempts=1, next_attempt_at=now + RETRY_EVERY
    )
    end_lock.command = key_commands.system_command(
        key=key, action=CommandAction.LOCK, reason=reason
    )
    if end_lock.command is None:
        end_lock.last_problem = "The car is not connected to its vehicle cloud."
    end_lock.save(update_fields=["command", "last_problem"])
    return end_lock


def end_locks_pending(*, limit: int = 500) -> list[int]:
    return list(EndLock.objects.filter(status=E.PENDING).values_list("pk", flat=True)[:limit])


def _confirmed_lock_since(end_lock: EndLock) -> VehicleCommand | None:
    return (
        VehicleCommand.objects.filter(
            car_id=end_lock.car_id,
            action=CommandAction.LOCK,
            confirmed_at__isnull=False,
            requested_at__gte=end_lock.created_at,
        )
        .order_by("-confirmed_at")
        .first()
    )


def _latest_lock(end_lock: EndLock) -> VehicleCommand | None:
    """The newest LOCK of the car since the end: ours, or one the holder or owner pressed (which
    supersedes ours while queued, and locks the car just the same)."""
    return (
        VehicleCommand.objects.filter(
            car_id=end_lock.car_id,
            action=CommandAction.LOCK,
            requested_at__gte=end_lock.created_at,
        )
        .order_by("-requested_at", "-pk")
        .first()
    )


def _taken_over(end_lock: EndLock, now: datetime.datetime) -> str:
    """Why this end lock should stop (another window started, the owner opened the car)."""
    key = end_lock.key
    next_window = DigitalKey.objects.filter(
        car_id=end_lock.car_id,
        status=KeyStatus.ACTIVE,
        kind__in=[KeyKind.TRIP, KeyKind.SERVICE],
        valid_from__lte=now,
        # A window that opened after this one, whenever it was booked: a cleaning booked
        # before the trip takes over from the trip's end lock just the same.
        valid_from__gt=key.valid_from,
    ).exclude(pk=key.pk)
    if key.booking_id is not None:
        next_window = next_window.exclude(booking_id=key.booking_id)
    if next_window.exists():
        return "the next trip or service window started"
    owner_unlock = VehicleCommand.objects.filter(
        car_id=end_lock.car_id,
        action=CommandAction.UNLOCK,
        reason__in=[CommandReason.OWNER, CommandReason.ADMIN],
        requested_at__gte=end_lock.created_at,
    ).exists()
    return "the owner unlocked the car since" if owner_unlock else ""


def _problem(command: VehicleCommand | None, now: datetime.datetime) -> str | None:
    """What went wrong with the latest lock; None while it may still work out."""
    if command is None:
        return "The lock could not be sent."
    if command.status in (C.QUEUED, C.SENT):
        return None
    if command.status == C.SUCCEEDED:
        if command.answered_at and now - command.answered_at < UNCONFIRMED_AFTER:
            return None
        return "The vehicle cloud accepted the lock but the car does not report itself locked."
    if command.status == C.FAILED:
        code = f" ({command.error_code})" if command.error_code else ""
        return f"{command.error_message or 'The lock failed.'}{code}"
    return f"The lock was {command.get_status_display().lower()} before reaching the car."


@transaction.atomic(durable=True)
def end_lock_check(*, end_lock_id: int) -> str:
    """One sweep step for one end lock; returns what it did (for logs and tests)."""
    now = timezone.now()
    end_lock = (
        EndLock.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("key", "command")
        .filter(pk=end_lock_id, status=E.PENDING)
        .first()
    )
    if end_lock is None:
        return ""  # done, or another sweep holds it right now
    if _confirmed_lock_since(end_lock) is not None:
        _finish(end_lock, E.LOCKED, now)
        return "locked"
    if reason := _taken_over(end_lock, now):
        end_lock.last_problem = reason
        _finish(end_lock, E.HANDED_OVER, now)
        return "handed_over"
    problem = _problem(_latest_lock(end_lock) or end_lock.command, now)
    if problem is None:
        return "waiting"
    end_lock.last_problem = problem[:500]
    changed = ["last_problem"]
    did = "waiting"
    if end_lock.next_attempt_at is None or end_lock.next_attempt_at <= now:
        command = key_commands.system_command(
            key=end_lock.key, action=CommandAction.LOCK, reason=_end_reason(end_lock)
        )
        if command is not None:
            end_lock.command = command
            changed.append("command")
        end_lock.attempts += 1
        end_lock.next_attempt_at = now + RETRY_EVERY
        changed += ["attempts", "next_attempt_at"]
        did = "retried"
    if end_lock.last_alert_at is None or now - end_lock.last_alert_at >= ALERT_EVERY:
        end_lock.alerts_sent += 1
        end_lock.last_alert_at = now
        changed += ["alerts_sent", "last_alert_at"]
        tasks_email.send_end_lock_alert.delay_on_commit(
            end_lock_id=end_lock.pk, number=end_lock.alerts_sent
        )
        did += "+alerted"
    end_lock.save(update_fields=changed)
    log.warning("End lock %s of car %s: %s (%s)", end_lock.pk, end_lock.car_id, problem, did)
    return did


def _end_reason(end_lock: EndLock) -> str:
    return (
        CommandReason.SERVICE_END
        if end_lock.key.kind == KeyKind.SERVICE
        else CommandReason.TRIP_END
    )


def _finish(end_lock: EndLock, status: str, now: datetime.datetime) -> None:
    end_lock.status = status
    end_lock.done_at = now
    end_lock.save(update_fields=["status", "done_at", "last_problem"])
    if end_lock.alerts_sent and status == E.LOCKED:
        # Those told it would not lock hear that it did.
        tasks_email.send_end_lock_alert.delay_on_commit(end_lock_id=end_lock.pk, number=0)
