"""The worker's side of a command: claim it, send it (vehicles.tasks), record the answer.

A worker claims a queued command (queued → sent, one attempt), calls the vehicle cloud with no
transaction open, then records the answer: succeeded (and later confirmed by reading the lock
status), failed (the car or the cloud refused; never retried blindly), or back to queued for
another attempt after a rate limit or a transient error, up to a budget. The functions here
write; the caller, which holds the task, sends the next message when one is due.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from vehicles.cloud import connections, live_status, provider
from vehicles.cloud.outbox import (
    PERSON_REASONS,
    C,
    command_end_late,
    command_locked,
    command_move,
    user_message,
    wanted_locked,
)
from vehicles.makes import command_min_interval
from vehicles.models import Car, VehicleCommand, VehicleConnection

# Retry budgets, counted in sends (attempts). Transient failures (UPSTREAM, SERVER, timeouts)
# back off exponentially; rate limits wait what the cloud says, and get more room because the
# car itself is fine. A person's command is cut shorter still by its send window.
TRANSIENT_MAX_ATTEMPTS = 5
RATE_LIMITED_MAX_ATTEMPTS = 10
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 120.0
DEFAULT_RETRY_AFTER_S = 60
# Another command of the car is in flight: look again shortly.
BUSY_RETRY_S = 2.0
# A trip's unlock in its start window (VehicleCommand.retry_until): the renter is on the way or
# at the car, so a car that cannot be reached now is tried again until the window closes, each
# error with its own pause. Unreachable (no coverage, a garage): soon, then every half minute.
# Asleep: once more shortly (a command may wake it), then calmer, sparing the 12 V battery. The
# cloud's 5xx and timeouts: exponential, capped. A rate limit: what Retry-After says. Never
# faster than the make allows (vehicles.makes.command_min_interval), never more than
# START_MAX_ATTEMPTS sends: commands per car stay bounded whatever the car does.
# Unreachable: every 8 s for the first two minutes, so a car back in coverage opens within a
# command's own latency of that moment (a renter who just walked it out of a garage, a car
# whose cloud had a blip), then 15 s, then every 30 s.
START_STATE_PAUSES_S: dict[str, tuple[float, ...]] = {
    "UNREACHABLE": (8.0,) * 15 + (15.0, 30.0),
    "ASLEEP": (5.0, 15.0, 30.0, 60.0),
}
START_BACKOFF_MAX_S = 30.0
START_MAX_ATTEMPTS = 50
# A message may arrive a little before the due time it was scheduled for (clock skew).
DUE_TOLERANCE = datetime.timedelta(seconds=1)


@dataclass(frozen=True)
class Claim:
    """A command this worker now owns: send `action` to `vehicle_id` as attempt `attempt`."""

    command_id: int
    attempt: int
    action: str
    car_id: int
    connection_id: int
    vehicle_id: str
    by_person: bool = True  # someone pressed a button (and is looking at the car's status)
    # The connection row as the claim read it: its token is used without reading it again.
    connection: VehicleConnection | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Busy:
    """Another command of the car is in flight: the command was marked due again in `delay`."""

    delay: float


def _is_due(command: VehicleCommand, now: datetime.datetime) -> bool:
    return command.next_attempt_at is None or command.next_attempt_at <= now + DUE_TOLERANCE


def command_claim(*, command_id: int) -> Claim | Busy | None:
    """Take the queued command for sending (queued → sent); None when there is nothing to do,
    Busy when the caller should look again after its delay.

    Leaves it alone when gone, no longer queued or not yet due (another message is scheduled
    for then); expires a person's command past its send window; fails it when the key no longer
    allows it or the car lost its connection; reschedules when another command of the car is in
    flight. One short transaction under the command's row lock: at a thousand trips starting in
    the same second this runs a thousand times, so every statement counts.
    """
    now = timezone.now()
    try:
        with transaction.atomic(durable=True):
            command = command_locked(command_id)
            if command is None or command.status != C.QUEUED or not _is_due(command, now):
                return None
            connection = _claim_refusal_or_connection(command, now)
            if connection is None:
                return None
            claimed = command_move(
                command,
                C.SENT,
                "sending",
                locked=True,  # read under the lock above: queued, due, not yet sent
                sent_at=now,
                next_attempt_at=None,
                staged=False,
            )
    except IntegrityError:
        # command_one_in_flight_per_car: another command of this car is sent and unanswered.
        # Not an error: look again shortly (the sweep settles it if its worker died).
        delay = _jitter(BUSY_RETRY_S)
        return Busy(delay=delay) if command_reschedule(command_id=command_id, delay=delay) else None
    if claimed is None:
        return None  # cannot happen under the lock; kept so a future move rule fails safe
    return Claim(
        command_id=claimed.pk,
        attempt=claimed.attempts,
        action=claimed.action,
        car_id=claimed.car_id,
        connection_id=connection.pk,
        vehicle_id=connection.vehicle_id,
        by_person=claimed.reason in PERSON_REASONS,
        connection=connection,
    )


def _claim_refusal_or_connection(
    command: VehicleCommand, now: datetime.datetime
) -> VehicleConnection | None:
    """The connection to send `command` through, or None after ending it for good (locked).

    The last check before the car is the command's own row: still queued (a revoked key
    withdrew its commands) and not past its deadline."""
    if command.not_after is not None and now >= command.not_after:
        command_end_late(command, locked=True)
        return None
    connection = connections.connection_live_for_car(car_id=command.car_id)
    if connection is None:
        command_move(
            command,
            C.FAILED,
            "car not connected",
            locked=True,
            error_type="NOT_CONNECTED",
            error_message=_("This car is not connected to its vehicle cloud."),
        )
    return connection


@transaction.atomic(durable=True)
def command_reschedule(*, command_id: int, delay: float) -> bool:
    """Mark a still-queued command due again in `delay` seconds; the caller sends its message
    (the marker first, so a lost message is found by the sweep)."""
    at = timezone.now() + datetime.timedelta(seconds=delay)
    moved = VehicleCommand.objects.filter(pk=command_id, status=C.QUEUED).update(next_attempt_at=at)
    return bool(moved)


@transaction.atomic(durable=True)
def command_record_ack(
    *, claim: Claim, ack: provider.CommandAck, confirmed: provider.LockStatus | None = None
) -> bool:
    """The cloud accepted the command: succeeded. `confirmed`: the car already reports the
    wanted state (read right after the answer), recorded with it; otherwise confirmation
    follows (command_record_confirmation). False if stale."""
    now = timezone.now()
    if confirmed is not None and confirmed.is_locked != wanted_locked(claim.action):
        raise ValueError("confirmed= must show the state the command asked for")
    moved = command_move(
        claim.command_id,
        C.SUCCEEDED,
        ack.message or "accepted by the vehicle cloud",
        attempt=claim.attempt,
        answered_at=now,
        provider_request_id=ack.meta.request_id[:64],
        error_type="",
        error_code="",
        error_message="",
        # mypy matches a ** dict against every keyword, `locked: bool` too.
        **({"confirmed_at": now} if confirmed is not None else {}),  # type: ignore[arg-type]
    )
    if moved is not None and confirmed is not None:
        live_status.vehicle_status_record_lock(car_id=claim.car_id, lock_status=confirmed)
    return moved is not None


def _jitter(seconds: float) -> float:
    # Spread retries so commands that failed together do not hit the cloud together again;
    # not security-relevant randomness.
    return seconds * random.uniform(0.5, 1.0)  # noqa: S311


def _backoff(attempts: int) -> float:
    return _jitter(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


def _retry_delay(command: VehicleCommand, error: provider.VehicleCloudError) -> float | None:
    """Seconds until the next attempt, or None when this error ends the command."""
    if command.retry_until is not None:
        return _start_retry_delay(command, error, command.retry_until)
    if isinstance(error, provider.RateLimited):
        if command.attempts >= RATE_LIMITED_MAX_ATTEMPTS:
            return None
        return float(error.retry_after or DEFAULT_RETRY_AFTER_S)
    if isinstance(error, provider.TransientError):
        if command.attempts >= TRANSIENT_MAX_ATTEMPTS:
            return None
        return _backoff(command.attempts)
    # VEHICLE_STATE, COMPATIBILITY, accounts, permissions, authentication, our own bugs: trying
    # the same thing again changes nothing, and would unlock a car when nobody expects it.
    return None


def _start_pause(attempts: int, error: provider.VehicleCloudError) -> float:
    """The pause after failed send number `attempts` of a trip's unlock, before the make's
    spacing: by the error, as START_STATE_PAUSES_S and the constants above say."""
    if isinstance(error, provider.RateLimited):
        return float(error.retry_after or DEFAULT_RETRY_AFTER_S)
    pauses = START_STATE_PAUSES_S.get(error.code or "")
    if isinstance(error, provider.VehicleStateError) and pauses is not None:
        return pauses[min(max(attempts, 1), len(pauses)) - 1]
    return min(START_BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


def _start_retry_delay(
    command: VehicleCommand, error: provider.VehicleCloudError, retry_until: datetime.datetime
) -> float | None:
    """A trip's unlock in its start window: the car is expected to answer soon, so the errors a
    car or its cloud recover from are tried again until retry_until. Refusals that need a person
    (remote access off, service mode, a revoked grant) end it, for the renter's fallbacks."""
    retried = isinstance(error, provider.RateLimited | provider.TransientError) or (
        isinstance(error, provider.VehicleStateError) and error.code in START_STATE_PAUSES_S
    )
    if not retried or command.attempts >= START_MAX_ATTEMPTS:
        return None
    make = Car.objects.filter(pk=command.car_id).values_list("make", flat=True).first() or ""
    delay = max(_jitter_up(_start_pause(command.attempts, error)), command_min_interval(make))
    if timezone.now() + datetime.timedelta(seconds=delay) > retry_until:
        return None
    return delay


def _jitter_up(seconds: float) -> float:
    # Spread cars that failed together (a garage of them, one cloud outage) without ever coming
    # sooner than the pause: a rate limit's Retry-After is a floor. Not security-relevant.
    return seconds * random.uniform(1.0, 1.2)  # noqa: S311


@transaction.atomic(durable=True)
def command_record_error(*, claim: Claim, error: provider.VehicleCloudError) -> float | None:
    """Back to queued for a retry (returns its delay: the caller sends the message) or failed
    (None)."""
    command = VehicleCommand.objects.select_for_update().filter(pk=claim.command_id).first()
    if command is None or command.status != C.SENT or command.attempts != claim.attempt:
        return None  # answered or re-sent meanwhile: this answer is stale
    error_fields: dict[str, Any] = {
        "error_type": (error.type or error.__class__.__name__)[:64],
        "error_code": (error.code or "")[:64],
        "error_message": user_message(error)[:500],
    }
    note = f"attempt {claim.attempt}: {error}"
    delay = _retry_delay(command, error)
    if delay is None:
        command_move(command, C.FAILED, note, attempt=claim.attempt, **error_fields)
        return None
    at = timezone.now() + datetime.timedelta(seconds=delay)
    moved = command_move(
        command, C.QUEUED, note, attempt=claim.attempt, next_attempt_at=at, **error_fields
    )
    return None if moved is None else delay


@transaction.atomic(durable=True)
def command_record_confirmation(*, command_id: int, lock_status: provider.LockStatus) -> bool:
    """The car reports the state the command asked for: record confirmed_at once."""
    action = VehicleCommand.objects.filter(pk=command_id).values_list("action", "car_id")[:1]
    command = next(iter(action), None)
    if command is None or lock_status.is_locked != wanted_locked(command[0]):
        return False
    live_status.vehicle_status_record_lock(car_id=command[1], lock_status=lock_status)
    confirmed = VehicleCommand.objects.filter(
        pk=command_id, status=C.SUCCEEDED, confirmed_at__isnull=True
    ).update(confirmed_at=timezone.now())
    return bool(confirmed)


def commands_awaiting_confirmation(*, car_id: int) -> list[int]:
    """The car's succeeded commands no status read has confirmed yet, oldest first."""
    return list(
        VehicleCommand.objects.filter(car_id=car_id, status=C.SUCCEEDED, confirmed_at__isnull=True)
        .order_by("requested_at", "pk")
        .values_list("pk", flat=True)[:20]
    )
