"""The sweep's side of the outbox: commands a worker or a message lost.

The database is the truth and the broker a doorbell: sweep_vehicle_commands (vehicles.tasks)
sends again the queued commands whose message was lost, expires overdue ones and settles
commands left `sent` by a worker that died, with what the car reports now.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from vehicles.cloud import connections, live_status, outbox, provider, sending
from vehicles.cloud.outbox import C
from vehicles.models import VehicleCommand

# A queued command still waiting this long after its due time lost its message: send another.
REDISPATCH_AFTER = datetime.timedelta(seconds=5)
# A `sent` command with no answer after the read timeout plus this margin lost its worker.
STALE_SENT_MARGIN = datetime.timedelta(seconds=30)


@dataclass(frozen=True)
class StaleCommand:
    """A command left `sent` with no answer: its worker died, or its message was lost."""

    command_id: int
    attempt: int
    action: str
    car_id: int
    connection_id: int | None
    vehicle_id: str


def commands_stale_sent(*, now: datetime.datetime, limit: int = 100) -> list[StaleCommand]:
    """Commands sent longer ago than any answer can take (read timeout plus a margin)."""
    cutoff = now - datetime.timedelta(seconds=settings.VEHICLE_CLOUD_READ_TIMEOUT)
    cutoff -= STALE_SENT_MARGIN
    stale = []
    for command in VehicleCommand.objects.filter(status=C.SENT, sent_at__lt=cutoff).order_by(
        "sent_at"
    )[:limit]:
        connection = connections.connection_live_for_car(car_id=command.car_id)
        stale.append(
            StaleCommand(
                command_id=command.pk,
                attempt=command.attempts,
                action=command.action,
                car_id=command.car_id,
                connection_id=connection.pk if connection else None,
                vehicle_id=connection.vehicle_id if connection else "",
            )
        )
    return stale


@transaction.atomic(durable=True)
def command_settle_stale(*, stale: StaleCommand, lock_status: provider.LockStatus | None) -> str:
    """Complete a stale command from what the car reports now; returns the new status or "".

    Already in the wanted state → succeeded and confirmed (whether our send or someone else's
    got it there, the car is as asked). Otherwise back to queued and sent again: lock and unlock
    are idempotent on the car, so one extra send is harmless, and an expired send window or
    spent budget still stops it.
    """
    now = timezone.now()
    if lock_status is not None and lock_status.is_locked == outbox.wanted_locked(stale.action):
        moved = outbox.command_move(
            stale.command_id,
            C.SUCCEEDED,
            "no answer recorded; the car reports the wanted state",
            attempt=stale.attempt,
            answered_at=now,
            confirmed_at=now,
        )
        if moved is not None:
            live_status.vehicle_status_record_lock(car_id=stale.car_id, lock_status=lock_status)
        return moved.status if moved else ""
    command = VehicleCommand.objects.filter(pk=stale.command_id).first()
    if command is None or command.status != C.SENT or command.attempts != stale.attempt:
        return ""
    in_start_window = command.retry_until is not None and now < command.retry_until
    budget = sending.START_MAX_ATTEMPTS if in_start_window else sending.TRANSIENT_MAX_ATTEMPTS
    if command.attempts >= budget:
        moved = outbox.command_move(
            command,
            C.FAILED,
            "no answer from the vehicle cloud",
            attempt=stale.attempt,
            error_type="NO_ANSWER",
            error_message=outbox.PLAIN_MESSAGES[provider.TransientError],
        )
        return moved.status if moved else ""
    moved = outbox.command_move(
        command,
        C.QUEUED,
        "no answer recorded; sending again",
        attempt=stale.attempt,
        next_attempt_at=now,
    )
    if moved is None:
        return ""
    if moved.not_after is not None and now >= moved.not_after:
        # Past its deadline: it ends here, unsent, as commands_expire_overdue would end it.
        outbox.command_end_late(moved, locked=True)
        return moved.status
    return moved.status  # queued again: the caller sends its message


def commands_expire_overdue(*, now: datetime.datetime) -> int:
    """End queued commands past their deadline, unsent; returns how many."""
    expired = 0
    overdue = VehicleCommand.objects.filter(status=C.QUEUED, not_after__lte=now).values_list(
        "pk", flat=True
    )
    for pk in list(overdue[:500]):
        with transaction.atomic(durable=True):
            if outbox.command_end_late(pk):
                expired += 1
    return expired


def commands_redispatch_lost(*, now: datetime.datetime) -> list[int]:
    """The queued commands due a while ago that no worker picked up, marked due now: the caller
    sends their messages again."""
    cutoff = now - REDISPATCH_AFTER
    lost = (
        VehicleCommand.objects.filter(status=C.QUEUED)
        .filter(Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True))
        .filter(Q(not_after__isnull=True) | Q(not_after__gt=now))
        .values_list("pk", "next_attempt_at")
    )
    again = []
    for pk, due_at in list(lost[:500]):
        # Conditional on the due time we saw: of two sweeps, one re-sends.
        if VehicleCommand.objects.filter(pk=pk, status=C.QUEUED, next_attempt_at=due_at).update(
            next_attempt_at=now
        ):
            again.append(pk)
    return again
