"""Asking a car for a command: the lock and unlock every caller records in the outbox.

keys (every command a person asks of a car) and the trip and key clocks call here, inside their
own transactions; each command is sent by vehicles.tasks once that transaction commits. The
command's states and the worker's side are in vehicles.cloud (outbox, sending, sweep). Also here:
the other requests that ring a worker's doorbell, a confirmation a webhook asks for and a status
refresh.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Collection

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from accounts.models import User
from carshare.errors import DomainError
from vehicles import tasks
from vehicles.cloud import connections, live_status, outbox
from vehicles.cloud.outbox import END_LOCK_REASONS, PERSON_REASONS, PERSON_SEND_WINDOW, C
from vehicles.makes import command_min_interval
from vehicles.models import (
    COMMAND_PENDING,
    Car,
    CommandAction,
    CommandReason,
    ConnectionStatus,
    VehicleCommand,
    VehicleCommandEvent,
)


class CommandRefused(DomainError):
    """The command cannot be asked for; str(error) can be shown to the person as is. The car's
    state, not the request, is in the way, so the API answers 409."""

    default_status = 409

    def __init__(self, message: str | Promise, *, code: str = "refused") -> None:
        # code is stable, for programs: not_connected, needs_reconnecting
        super().__init__(code, message)


def _dispatch(command_id: int, *, delay: float = 0.0) -> None:
    """Ring the doorbell once the transaction commits; next_attempt_at already says when."""
    tasks.run_vehicle_command.apply_async_on_commit(
        kwargs={"command_id": command_id}, countdown=delay if delay > 0 else None
    )


def car_lock(*, car_id: int) -> None:
    """Inside the caller's transaction: lock the car's row, always the first row locked by
    anything that may ask the car for a command (a press, the owner, the trip and key clocks).

    One order for everyone: a press that held its key while waiting for the car, against the
    owner or the trip clock holding the car while writing an audit row that points at that key
    (which takes a share lock on the key row), was a deadlock under a burst of presses.
    """
    Car.objects.select_for_update().filter(pk=car_id).values_list("pk", flat=True).first()


@transaction.atomic(durable=True)
def vehicle_command_request(
    *, car: Car, action: str, reason: str, actor: User | None, key_id: int | None = None
) -> VehicleCommand:
    """Record a lock/unlock for the car and send it once committed; older queued ones yield. A
    press while the same action is already on its way is answered with that command."""
    return vehicle_command_enqueue(
        car_id=car.pk, action=action, reason=reason, actor=actor, key_id=key_id
    )


def vehicle_command_enqueue(
    *,
    car_id: int,
    action: str,
    reason: str,
    actor: User | None,
    key_id: int | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    late_message: str = "",
    retry_until: datetime.datetime | None = None,
    admit: Callable[[], None] | None = None,
) -> VehicleCommand:
    """vehicle_command_request inside the caller's transaction: the trip clock records the
    unlock at the start (or the lock at the end) in the same transaction as the trip's move, so
    both happen or neither does. Sent once that transaction commits. Who asked is audited
    by the caller: keys, which answers every command a person asks of a car.
    `not_before`: a system command staged ahead of its moment (the unlock at a trip start, so a
    thousand trips starting in one minute need no work at that minute but the sends); it waits
    queued, supersedes nothing and is superseded by nothing until then. `not_after`: the end of
    the key it is asked under, for its action (a person's command also ends with its send
    window); `late_message` says so to whoever asked, if that end comes first. `retry_until`: a
    system command's start window, until which a car that cannot be reached is tried again
    (vehicles.cloud.sending); never past `not_after`. The worker sends
    nothing past it and asks nobody else: revoking the key withdraws the command instead
    (vehicle_commands_withdraw).

    A command of the same action already queued or sent for the car (and not staged for later)
    is joined: it is returned, and no second command is written, so thirty presses of Unlock
    make one call to the car and every press follows the same progress. A queued command of
    the other action still yields to the newer wish, as it would to a new command. `admit`
    runs only when a new command is about to be written (the unlock rate limits: a joined press
    costs the car nothing, so it costs the person nothing either); it may raise to refuse."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("vehicle_command_enqueue() needs the calling service's transaction")
    if action not in CommandAction.values or reason not in CommandReason.values:
        raise ValueError(f"Unknown command {action!r} for {reason!r}")
    connection = connections.connection_live_for_car(car_id=car_id)
    if connection is None:
        raise CommandRefused(
            _("This car is not connected to its vehicle cloud."), code="not_connected"
        )
    is_person = reason in PERSON_REASONS
    if is_person and connection.status == ConnectionStatus.UNHEALTHY:
        # Its tokens failed to refresh: a person learns now rather than after a failed send.
        # System commands (trip start/end) are still recorded, so the failure stays on record.
        raise CommandRefused(
            _("The connection to this car needs renewing: the owner must reconnect it."),
            code="needs_reconnecting",
        )
    # The car row lock queues two requests for one car (two people pressing at once), so the
    # later one sees, and joins or supersedes, the earlier one's command.
    car_lock(car_id=car_id)
    now = timezone.now()
    staged = not_before is not None and not_before > now
    if staged and is_person:
        raise ValueError("Only system commands are staged ahead of time")
    pending = None if staged else _pending(car_id=car_id, action=action, now=now)
    if pending is not None and _joins(pending, is_person=is_person, now=now):
        _supersede_older(car_id=car_id, now=now, newest_pk=pending.pk, by=pending.public_id)
        if actor is not None and actor.pk != pending.actor_id:
            pending.joined_by.add(actor)
        return pending
    if admit is not None:
        admit()  # before anything yields to the new command: a refusal leaves all as it was
    public_id = uuid.uuid4()
    if not staged:
        # Before the new row, so the one-pending rule never sees the command it replaces.
        _supersede_older(car_id=car_id, now=now, newest_pk=None, by=public_id)
    send_by = now + PERSON_SEND_WINDOW if is_person else None
    deadline = min((d for d in (send_by, not_after) if d is not None), default=None)
    fields = {
        "public_id": public_id,
        "car_id": car_id,
        "key_id": key_id,
        "actor": actor,
        "action": action,
        "reason": reason,
        "send_by": send_by,
        "not_after": deadline,
        # Said only when the key's end, not the send window, is the deadline.
        "late_message": late_message[:200] if deadline is not None and deadline != send_by else "",
        "staged": staged,
        "retry_until": None
        if is_person or retry_until is None
        else min(d for d in (retry_until, deadline) if d is not None),
        "next_attempt_at": not_before if staged else now,
    }
    if reason == CommandReason.TRIP_START:
        command = VehicleCommand.objects.create(**fields)  # outside the one-pending rule
    else:
        try:
            with transaction.atomic():  # a savepoint: the violation must not end the caller's
                command = VehicleCommand.objects.create(**fields)
        except IntegrityError:
            # command_one_pending_per_car_and_action: written by a path that skipped the car
            # lock. The command already on its way is the answer, as for any joined press.
            pending = _pending(car_id=car_id, action=action, now=now, staged_too=True)
            if pending is None:
                raise
            return pending
    VehicleCommandEvent.objects.create(
        command=command,
        new_status=C.QUEUED,
        note=f"{reason} by {actor.email}" if actor is not None else f"{reason} by the system",
    )
    # Staged: nothing superseded yet, the car's current wishes stand until this one is due.
    # `staged` implies not_before is set; mypy cannot follow the bool.
    delay = (not_before - now).total_seconds() if staged else 0.0  # type: ignore[operator]
    _dispatch(command.pk, delay=delay)
    return command


def _pending(
    *, car_id: int, action: str, now: datetime.datetime, staged_too: bool = False
) -> VehicleCommand | None:
    """The car's command of this action already queued or sent, which a new press joins. A
    trip's unlock staged for its start is not on its way yet: a press during early access
    unlocks now (which is why the one-pending rule leaves trip-start unlocks out)."""
    pending = VehicleCommand.objects.filter(
        car_id=car_id, action=action, status__in=COMMAND_PENDING
    )
    if not staged_too:
        pending = pending.exclude(_staged(now))
    return pending.order_by("-pk").first()


def _joins(pending: VehicleCommand, *, is_person: bool, now: datetime.datetime) -> bool:
    """Does a new command of the same action join `pending` rather than replace it? Always,
    except a person's press finding a system command (a trip's unlock, an end lock) not yet
    sent: that one yields to the person's own, as any queued command yields to a newer one, and
    the person follows a command of their own. One waiting for its moment stays, and is joined.
    """
    if not is_person or pending.reason in PERSON_REASONS or pending.status != C.QUEUED:
        return True
    return _is_staged(pending, now)


def _supersede_older(
    *, car_id: int, now: datetime.datetime, newest_pk: int | None, by: object
) -> None:
    """The latest wish for the car wins: a command not yet sent would only undo it. A command
    staged for later (a trip's unlock at its start) is not older: it stays."""
    older = VehicleCommand.objects.filter(car_id=car_id, status=C.QUEUED).exclude(_staged(now))
    if newest_pk is not None:
        older = older.exclude(pk=newest_pk)
    for pk in older.values_list("pk", flat=True):
        outbox.command_move(pk, C.SUPERSEDED, f"replaced by {by}")


def _staged(now: datetime.datetime) -> Q:
    """Commands staged for a later moment that has not come yet (only the system stages, and
    only a trip's unlock at its start), unlike a command waiting to retry, which a newer one
    does replace."""
    return Q(staged=True, next_attempt_at__gt=now)


def _is_staged(command: VehicleCommand, now: datetime.datetime) -> bool:
    return command.staged and command.next_attempt_at is not None and command.next_attempt_at > now


def vehicle_commands_withdraw(
    *,
    key_id: int,
    note: str,
    message: str,
    fail: bool = True,
    actions: Collection[str] | None = None,
) -> int:
    """Inside the caller's transaction (a key revoked, expired or cut short): the key's commands
    still queued, of `actions` (default both), never go, with `message` for whoever follows
    them. A person's press fails (with `fail=False`, as when a trip is cancelled, it expires);
    the system's own (a trip's staged unlock) expires. End locks stay. Each leaves an event
    row; returns how many were withdrawn."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("vehicle_commands_withdraw() needs the calling service's transaction")
    queued = VehicleCommand.objects.filter(key_id=key_id, status=C.QUEUED).exclude(
        reason__in=END_LOCK_REASONS
    )
    if actions is not None:
        queued = queued.filter(action__in=actions)
    withdrawn = 0
    for pk in queued.values_list("pk", flat=True):
        command = outbox.command_locked(pk)
        if command is None or command.status != C.QUEUED:
            continue  # sent meanwhile: in flight, its answer decides
        to = C.FAILED if fail and command.reason in PERSON_REASONS else C.EXPIRED
        moved = outbox.command_move(
            command,
            to,
            note,
            locked=True,
            error_type="KEY_NOT_ACTIVE",
            error_message=message[:500],
        )
        if moved is not None:
            withdrawn += 1
    return withdrawn


@transaction.atomic(durable=True)
def vehicle_command_hurry(*, command_id: int) -> bool:
    """A queued command waiting out a retry pause is due now: someone is at the car. Never sooner
    after its last send than the make allows (vehicles.makes.command_min_interval); a command
    staged for a moment still to come stays as it is. False when it is not waiting to be sent."""
    command = outbox.command_locked(command_id)
    now = timezone.now()
    if command is None or command.status != C.QUEUED:
        return False
    if command.staged and command.next_attempt_at is not None and command.next_attempt_at > now:
        return False
    make = Car.objects.filter(pk=command.car_id).values_list("make", flat=True).first() or ""
    earliest = now
    if command.sent_at is not None:
        earliest = command.sent_at + datetime.timedelta(seconds=command_min_interval(make))
    due = max(now, earliest)
    if command.next_attempt_at is not None and command.next_attempt_at <= due:
        return True  # due sooner already, its message on its way
    VehicleCommand.objects.filter(pk=command.pk).update(next_attempt_at=due)
    _dispatch(command.pk, delay=(due - now).total_seconds())
    return True


def command_exists(*, key_id: int, reason: str) -> bool:
    return VehicleCommand.objects.filter(key_id=key_id, reason=reason).exists()


def vehicle_commands_request_confirmation(*, car_id: int, is_locked: bool) -> None:
    """A webhook reports the car locked or unlocked: if a succeeded command asked for that,
    have the car's own status read confirm it, on commit. A webhook never confirms by itself,
    so a claim the car does not back up cannot stop an end lock's escalation."""
    wanted = CommandAction.LOCK if is_locked else CommandAction.UNLOCK
    if VehicleCommand.objects.filter(
        car_id=car_id, status=C.SUCCEEDED, action=wanted, confirmed_at__isnull=True
    ).exists():
        tasks.confirm_vehicle_commands.delay_on_commit(car_id=car_id)


def vehicle_status_request_refresh(*, car_id: int) -> None:
    """Enqueue a status refresh unless one was asked for within VEHICLE_STATUS_MIN_INTERVAL.

    Not durable: trip start and end call it inside their own transactions; sent on commit.
    """
    if live_status.vehicle_status_claim_refresh(car_id=car_id):
        tasks.refresh_vehicle_status.delay_on_commit(car_id=car_id)
