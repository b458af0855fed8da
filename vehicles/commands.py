"""Vehicle commands (the outbox every lock and unlock goes through) and the live status.

A command is written `queued` in the caller's transaction and run by vehicles.tasks on the
"vehicle" queue. A worker claims it (queued → sent, one attempt), calls the vehicle cloud with no
transaction open, then records the answer: succeeded (and later confirmed by reading the lock
status), failed (the car or the cloud refused; never retried blindly), or back to queued for
another attempt after a rate limit or a transient error, up to a budget. A queued command leaves
early as expired (not sent by its deadline, `not_after`: a person's PERSON_SEND_WINDOW, or
before that the end of the key it was asked under, which fails it with words from keys),
withdrawn (its key was revoked or ended: vehicle_commands_withdraw) or superseded (a newer
command for the same car). _command_move() is the one place a status changes; each change leaves
a VehicleCommandEvent.

The database is the truth and the broker a doorbell: sweep_vehicle_commands re-dispatches queued
commands whose message was lost, expires overdue ones and settles commands left `sent` by a
worker that died. Every step is a conditional move under a row lock (status and attempt number),
so running any of them twice, or concurrently, completes a command exactly once.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from accounts.models import User
from carshare.errors import DomainError
from vehicles import connections, provider, tasks
from vehicles.models import (
    COMMAND_MOVES,
    COMMAND_PENDING,
    Car,
    CommandAction,
    CommandReason,
    CommandStatus,
    ConnectionStatus,
    VehicleCommand,
    VehicleCommandEvent,
    VehicleConnection,
    VehicleStatus,
)

C = CommandStatus

# A person pressed a button: if the car cannot be reached within this window the command dies,
# so a car never unlocks minutes after someone gave up and walked away.
PERSON_SEND_WINDOW = datetime.timedelta(seconds=60)
PERSON_REASONS = frozenset(
    {CommandReason.RENTER, CommandReason.OWNER, CommandReason.SERVICE, CommandReason.ADMIN}
)
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
# A queued command still waiting this long after its due time lost its message: send another.
REDISPATCH_AFTER = datetime.timedelta(seconds=5)
# A message may arrive a little before the due time it was scheduled for (clock skew).
DUE_TOLERANCE = datetime.timedelta(seconds=1)
# A `sent` command with no answer after the read timeout plus this margin lost its worker.
STALE_SENT_MARGIN = datetime.timedelta(seconds=30)

# Shown when the cloud gave no suggestedUserMessage: plain words for whoever pressed the button.
PLAIN_MESSAGES: dict[type[provider.VehicleCloudError], str] = {
    provider.VehicleStateError: "The car could not do this right now.",
    provider.NotCapable: "This car cannot be locked or unlocked remotely.",
    provider.AccountProblem: "The car's owner needs to act in the car maker's app or account.",
    provider.PermissionDenied: "carshare may not do this for this car; the owner needs to "
    "reconnect it.",
    provider.AuthenticationFailed: "The car's connection has expired; the owner needs to "
    "reconnect it.",
    provider.InvalidRequest: "The vehicle cloud refused the request.",
    provider.RateLimited: "The car is receiving too many requests; try again later.",
    provider.TransientError: "The car did not answer; try again in a moment.",
}


class CommandRefused(DomainError):
    """The command cannot be asked for; str(error) can be shown to the person as is. The car's
    state, not the request, is in the way, so the API answers 409."""

    default_status = 409

    def __init__(self, message: str | Promise, *, code: str = "refused") -> None:
        # code is stable, for programs: not_connected, needs_reconnecting
        super().__init__(code, message)


# --- The one place a status changes ---------------------------------------------------------


def _command_move(
    command: VehicleCommand | int,
    to: str,
    note: str = "",
    *,
    attempt: int | None = None,
    locked: bool = False,
    **fields: object,
) -> VehicleCommand | None:
    """Move the command to `to` under a row lock, with an event row; None if it cannot move.

    The row lock makes check-and-set atomic, like UPDATE ... WHERE status = <seen>: of two
    workers or sweeps racing on one command exactly one moves it, and the other learns so by
    the None (usually a redelivered message or a second sweep: not an error). `attempt` also
    pins the send the caller is answering for, so an answer arriving after the sweep re-sent
    the command cannot close the newer attempt. A move to `sent` counts an attempt, and may
    raise IntegrityError when another command of the car is in flight. `locked`: `command` is
    the row as this transaction read it with _command_locked() (saves reading it again).
    """
    if not transaction.get_connection().in_atomic_block:  # a row lock ends with its transaction
        raise RuntimeError("_command_move() needs the calling service's transaction")
    if locked and isinstance(command, VehicleCommand):
        current: VehicleCommand | None = command
    else:
        current = _command_locked(command.pk if isinstance(command, VehicleCommand) else command)
    if current is None or to not in COMMAND_MOVES.get(current.status, set()):
        return None
    if attempt is not None and current.attempts != attempt:
        return None
    VehicleCommandEvent.objects.create(
        command=current, old_status=current.status, new_status=to, note=note[:500]
    )
    for name, value in fields.items():
        setattr(current, name, value)
    current.status = to
    changed = ["status", *fields]
    if to == C.SENT:
        current.attempts += 1
        changed.append("attempts")
    current.save(update_fields=changed)
    return current


def _command_locked(command_id: int) -> VehicleCommand | None:
    """The command's row, locked until the transaction ends; None when it is gone.

    Sliced rather than .first(): no ORDER BY to build, on the hottest query of a trip wave.
    """
    return next(iter(VehicleCommand.objects.select_for_update().filter(pk=command_id)[:1]), None)


def _dispatch(command_id: int, *, delay: float = 0.0) -> None:
    """Ring the doorbell once the transaction commits; next_attempt_at already says when."""
    tasks.run_vehicle_command.apply_async_on_commit(
        kwargs={"command_id": command_id}, countdown=delay if delay > 0 else None
    )


# --- Asking for a command -------------------------------------------------------------------


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
    window); `late_message` says so to whoever asked, if that end comes first. The worker sends
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
        _command_move(pk, C.SUPERSEDED, f"replaced by {by}")


def _staged(now: datetime.datetime) -> Q:
    """Commands staged for a later moment that has not come yet (only the system stages, and
    only a trip's unlock at its start), unlike a command waiting to retry, which a newer one
    does replace."""
    return Q(staged=True, next_attempt_at__gt=now)


def _is_staged(command: VehicleCommand, now: datetime.datetime) -> bool:
    return command.staged and command.next_attempt_at is not None and command.next_attempt_at > now


# An end lock locks a car whose key just ended: nothing withdraws it, and no deadline stops it.
END_LOCK_REASONS = frozenset({CommandReason.TRIP_END, CommandReason.SERVICE_END})


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
        command = _command_locked(pk)
        if command is None or command.status != C.QUEUED:
            continue  # sent meanwhile: in flight, its answer decides
        to = C.FAILED if fail and command.reason in PERSON_REASONS else C.EXPIRED
        moved = _command_move(
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


def command_exists(*, key_id: int, reason: str) -> bool:
    return VehicleCommand.objects.filter(key_id=key_id, reason=reason).exists()


# --- Running a command (called by vehicles.tasks around the provider calls) ----------------


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


def _is_due(command: VehicleCommand, now: datetime.datetime) -> bool:
    return command.next_attempt_at is None or command.next_attempt_at <= now + DUE_TOLERANCE


def command_claim(*, command_id: int) -> Claim | None:
    """Take the queued command for sending (queued → sent); None when there is nothing to do.

    Leaves it alone when gone, no longer queued or not yet due (another message is scheduled
    for then); expires a person's command past its send window; fails it when the key no longer
    allows it or the car lost its connection; reschedules when another command of the car is in
    flight. One short transaction under the command's row lock: at a thousand trips starting in
    the same second this runs a thousand times, so every statement counts.
    """
    now = timezone.now()
    try:
        with transaction.atomic(durable=True):
            command = _command_locked(command_id)
            if command is None or command.status != C.QUEUED or not _is_due(command, now):
                return None
            connection = _claim_refusal_or_connection(command, now)
            if connection is None:
                return None
            claimed = _command_move(
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
        command_reschedule(command_id=command_id, delay=_jitter(BUSY_RETRY_S))
        return None
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
        _command_end_late(command, locked=True)
        return None
    connection = connections.connection_live_for_car(car_id=command.car_id)
    if connection is None:
        _command_move(
            command,
            C.FAILED,
            "car not connected",
            locked=True,
            error_type="NOT_CONNECTED",
            error_message=_("This car is not connected to its vehicle cloud."),
        )
    return connection


def _command_end_late(command: VehicleCommand | int, *, locked: bool = False) -> bool:
    """A queued command past its deadline: expired when it was the person's send window,
    failed with the words keys gave it when its key's window ended first."""
    if isinstance(command, int) or not locked:
        current = _command_locked(command if isinstance(command, int) else command.pk)
        if current is None:
            return False
        command = current
    if command.status != C.QUEUED:
        return False  # sent or ended meanwhile
    if command.late_message:
        moved = _command_move(
            command,
            C.FAILED,
            f"key no longer valid: {command.late_message}",
            locked=True,
            error_type="KEY_NOT_ACTIVE",
            error_message=command.late_message,
        )
    else:
        moved = _command_move(command, C.EXPIRED, "not sent within the send window", locked=True)
    return moved is not None


def command_refusal(command: VehicleCommand, now: datetime.datetime) -> str | None:
    """Why the worker would not send this command at `now` (None: it would), from its row."""
    if command.status != C.QUEUED:
        return command.error_message or _("This command is no longer waiting to be sent.")
    if command.not_after is not None and now >= command.not_after:
        return command.late_message or _("It was not sent in time.")
    return None


@transaction.atomic(durable=True)
def command_reschedule(*, command_id: int, delay: float) -> bool:
    """Run a still-queued command again in `delay` seconds (a marker first, then the message)."""
    at = timezone.now() + datetime.timedelta(seconds=delay)
    moved = VehicleCommand.objects.filter(pk=command_id, status=C.QUEUED).update(next_attempt_at=at)
    if moved:
        _dispatch(command_id, delay=delay)
    return bool(moved)


@transaction.atomic(durable=True)
def command_record_ack(
    *, claim: Claim, ack: provider.CommandAck, confirmed: provider.LockStatus | None = None
) -> bool:
    """The cloud accepted the command: succeeded. `confirmed`: the car already reports the
    wanted state (read right after the answer), recorded with it; otherwise confirmation
    follows (command_record_confirmation). False if stale."""
    now = timezone.now()
    if confirmed is not None and confirmed.is_locked != _wanted_locked(claim.action):
        raise ValueError("confirmed= must show the state the command asked for")
    moved = _command_move(
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
        _status_record_lock(car_id=claim.car_id, lock_status=confirmed)
    return moved is not None


def _jitter(seconds: float) -> float:
    # Spread retries so commands that failed together do not hit the cloud together again;
    # not security-relevant randomness.
    return seconds * random.uniform(0.5, 1.0)  # noqa: S311


def _backoff(attempts: int) -> float:
    return _jitter(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


def _user_message(error: provider.VehicleCloudError) -> str:
    if error.user_message:
        return error.user_message
    for kind, message in PLAIN_MESSAGES.items():
        if isinstance(error, kind):
            return message
    return PLAIN_MESSAGES[provider.InvalidRequest]


def _retry_delay(command: VehicleCommand, error: provider.VehicleCloudError) -> float | None:
    """Seconds until the next attempt, or None when this error ends the command."""
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


@transaction.atomic(durable=True)
def command_record_error(*, claim: Claim, error: provider.VehicleCloudError) -> float | None:
    """Back to queued for a retry (returns its delay, already scheduled) or failed (None)."""
    command = VehicleCommand.objects.select_for_update().filter(pk=claim.command_id).first()
    if command is None or command.status != C.SENT or command.attempts != claim.attempt:
        return None  # answered or re-sent meanwhile: this answer is stale
    error_fields: dict[str, Any] = {
        "error_type": (error.type or error.__class__.__name__)[:64],
        "error_code": (error.code or "")[:64],
        "error_message": _user_message(error)[:500],
    }
    note = f"attempt {claim.attempt}: {error}"
    delay = _retry_delay(command, error)
    if delay is None:
        _command_move(command, C.FAILED, note, attempt=claim.attempt, **error_fields)
        return None
    at = timezone.now() + datetime.timedelta(seconds=delay)
    moved = _command_move(
        command, C.QUEUED, note, attempt=claim.attempt, next_attempt_at=at, **error_fields
    )
    if moved is None:
        return None
    _dispatch(command.pk, delay=delay)
    return delay


def _wanted_locked(action: str) -> bool:
    return action == CommandAction.LOCK


@transaction.atomic(durable=True)
def command_record_confirmation(*, command_id: int, lock_status: provider.LockStatus) -> bool:
    """The car reports the state the command asked for: record confirmed_at once."""
    action = VehicleCommand.objects.filter(pk=command_id).values_list("action", "car_id")[:1]
    command = next(iter(action), None)
    if command is None or lock_status.is_locked != _wanted_locked(command[0]):
        return False
    _status_record_lock(car_id=command[1], lock_status=lock_status)
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


def vehicle_commands_request_confirmation(*, car_id: int, is_locked: bool) -> None:
    """A webhook reports the car locked or unlocked: if a succeeded command asked for that,
    have the car's own status read confirm it, on commit. A webhook never confirms by itself,
    so a claim the car does not back up cannot stop an end lock's escalation."""
    wanted = CommandAction.LOCK if is_locked else CommandAction.UNLOCK
    if VehicleCommand.objects.filter(
        car_id=car_id, status=C.SUCCEEDED, action=wanted, confirmed_at__isnull=True
    ).exists():
        tasks.confirm_vehicle_commands.delay_on_commit(car_id=car_id)


# --- The sweep's work -----------------------------------------------------------------------


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
    if lock_status is not None and lock_status.is_locked == _wanted_locked(stale.action):
        moved = _command_move(
            stale.command_id,
            C.SUCCEEDED,
            "no answer recorded; the car reports the wanted state",
            attempt=stale.attempt,
            answered_at=now,
            confirmed_at=now,
        )
        if moved is not None:
            _status_record_lock(car_id=stale.car_id, lock_status=lock_status)
        return moved.status if moved else ""
    command = VehicleCommand.objects.filter(pk=stale.command_id).first()
    if command is None or command.status != C.SENT or command.attempts != stale.attempt:
        return ""
    if command.attempts >= TRANSIENT_MAX_ATTEMPTS:
        moved = _command_move(
            command,
            C.FAILED,
            "no answer from the vehicle cloud",
            attempt=stale.attempt,
            error_type="NO_ANSWER",
            error_message=PLAIN_MESSAGES[provider.TransientError],
        )
        return moved.status if moved else ""
    moved = _command_move(
        command,
        C.QUEUED,
        "no answer recorded; sending again",
        attempt=stale.attempt,
        next_attempt_at=now,
    )
    if moved is None:
        return ""
    if moved.not_after is None or now < moved.not_after:
        _dispatch(command.pk)
    # else: past its deadline; commands_expire_overdue ends it, unsent.
    return moved.status


def commands_expire_overdue(*, now: datetime.datetime) -> int:
    """End queued commands past their deadline, unsent; returns how many."""
    expired = 0
    overdue = VehicleCommand.objects.filter(status=C.QUEUED, not_after__lte=now).values_list(
        "pk", flat=True
    )
    for pk in list(overdue[:500]):
        with transaction.atomic(durable=True):
            if _command_end_late(pk):
                expired += 1
    return expired


def commands_redispatch_lost(*, now: datetime.datetime) -> int:
    """Send again the queued commands due a while ago that no worker picked up."""
    cutoff = now - REDISPATCH_AFTER
    lost = (
        VehicleCommand.objects.filter(status=C.QUEUED)
        .filter(Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True))
        .filter(Q(not_after__isnull=True) | Q(not_after__gt=now))
        .values_list("pk", "next_attempt_at")
    )
    sent = 0
    for pk, due_at in list(lost[:500]):
        with transaction.atomic(durable=True):
            # Conditional on the due time we saw: of two sweeps, one re-sends.
            if VehicleCommand.objects.filter(pk=pk, status=C.QUEUED, next_attempt_at=due_at).update(
                next_attempt_at=now
            ):
                _dispatch(pk)
                sent += 1
    return sent


# --- Selectors ------------------------------------------------------------------------------


def command_for_owner(*, user: User, public_id: uuid.UUID | str) -> VehicleCommand:
    """The command for its car's owner, the person who asked for it or anyone whose press
    joined it; 404 for anyone else."""
    command = None
    if user.is_authenticated:
        command = VehicleCommand.objects.select_related("car").filter(public_id=public_id).first()
    if command is None or (
        user.pk not in (command.car.owner_id, command.actor_id)
        and not command.joined_by.filter(pk=user.pk).exists()
    ):
        raise Http404("No such command.")
    return command


def commands_for_car(*, car_id: int, limit: int = 20) -> QuerySet[VehicleCommand]:
    """The car's latest commands, newest first."""
    return VehicleCommand.objects.filter(car_id=car_id).order_by("-requested_at", "-pk")[:limit]


def vehicle_status_for_car(*, car_id: int) -> VehicleStatus | None:
    return VehicleStatus.objects.filter(car_id=car_id).first()


# --- Live status ----------------------------------------------------------------------------


def vehicle_status_request_refresh(*, car_id: int) -> None:
    """Enqueue a status refresh unless one was asked for within VEHICLE_STATUS_MIN_INTERVAL.

    Not durable: trip start and end call it inside their own transactions. The claim is a
    conditional UPDATE of refresh_requested_at, so however many pages ask at once, one refresh
    per interval reaches the car (the vehicle cloud's quota and the car's 12 V battery).
    """
    if connections.connection_live_for_car(car_id=car_id) is None:
        return
    now = timezone.now()
    VehicleStatus.objects.get_or_create(car_id=car_id)
    interval = datetime.timedelta(seconds=settings.VEHICLE_STATUS_MIN_INTERVAL)
    claimed = (
        VehicleStatus.objects.filter(car_id=car_id)
        .filter(Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lte=now - interval))
        .update(refresh_requested_at=now)
    )
    if claimed:
        tasks.refresh_vehicle_status.delay_on_commit(car_id=car_id)


def _status_record_lock(*, car_id: int, lock_status: provider.LockStatus) -> None:
    lock = {"is_locked": lock_status.is_locked, "doors_open": lock_status.doors_open}
    # A plain UPDATE first: the row almost always exists, and update_or_create would lock and
    # re-read it inside a savepoint (four statements instead of one, after every command).
    if not VehicleStatus.objects.filter(car_id=car_id).update(**lock):
        VehicleStatus.objects.update_or_create(car_id=car_id, defaults=lock)


def vehicle_status_record_lock(*, car_id: int, lock_status: provider.LockStatus) -> None:
    """What a lock-status read told us (after a command), outside a full refresh."""
    _status_record_lock(car_id=car_id, lock_status=lock_status)


def vehicle_status_record(
    *, car_id: int, readings: dict[str, object], data_age: datetime.datetime | None, error: str
) -> None:
    """Store what a refresh read; fields it could not read keep their last known values."""
    defaults: dict[str, object] = {
        **readings,
        "fetched_at": timezone.now(),
        "last_error": error[:255],
    }
    if data_age is not None:
        defaults["data_age"] = data_age
    VehicleStatus.objects.update_or_create(car_id=car_id, defaults=defaults)
