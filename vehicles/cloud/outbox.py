"""The command outbox: a command's states and the one function that moves them.

Every lock and unlock goes through a VehicleCommand row. It is written `queued` by whoever asks
(vehicles.commands), claimed and answered by a worker (vehicles.cloud.sending, called by
vehicles.tasks around the calls to the car), and swept when a worker or a message is lost
(vehicles.cloud.sweep). A queued command leaves early as expired (not sent by its deadline,
`not_after`: a person's PERSON_SEND_WINDOW, or before that the end of the key it was asked under,
which fails it with words from keys), withdrawn (its key was revoked or ended) or superseded (a
newer command for the same car). command_move() is the one place a status changes; each change
leaves a VehicleCommandEvent.

Every step is a conditional move under a row lock (status and attempt number), so running any of
them twice, or concurrently, completes a command exactly once.
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from vehicles.cloud import provider
from vehicles.models import (
    COMMAND_MOVES,
    CommandAction,
    CommandReason,
    CommandStatus,
    VehicleCommand,
    VehicleCommandEvent,
)

C = CommandStatus

# A person pressed a button: if the car cannot be reached within this window the command dies,
# so a car never unlocks minutes after someone gave up and walked away.
PERSON_SEND_WINDOW = datetime.timedelta(seconds=60)
PERSON_REASONS = frozenset(
    {CommandReason.RENTER, CommandReason.OWNER, CommandReason.SERVICE, CommandReason.ADMIN}
)
# An end lock locks a car whose key just ended: nothing withdraws it, and no deadline stops it.
END_LOCK_REASONS = frozenset({CommandReason.TRIP_END, CommandReason.SERVICE_END})


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


def command_move(
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
    the row as this transaction read it with command_locked() (saves reading it again).
    """
    if not transaction.get_connection().in_atomic_block:  # a row lock ends with its transaction
        raise RuntimeError("command_move() needs the calling service's transaction")
    if locked and isinstance(command, VehicleCommand):
        current: VehicleCommand | None = command
    else:
        current = command_locked(command.pk if isinstance(command, VehicleCommand) else command)
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


def command_locked(command_id: int) -> VehicleCommand | None:
    """The command's row, locked until the transaction ends; None when it is gone.

    Sliced rather than .first(): no ORDER BY to build, on the hottest query of a trip wave.
    """
    return next(iter(VehicleCommand.objects.select_for_update().filter(pk=command_id)[:1]), None)


def command_end_late(command: VehicleCommand | int, *, locked: bool = False) -> bool:
    """A queued command past its deadline: expired when it was the person's send window,
    failed with the words keys gave it when its key's window ended first."""
    if isinstance(command, int) or not locked:
        current = command_locked(command if isinstance(command, int) else command.pk)
        if current is None:
            return False
        command = current
    if command.status != C.QUEUED:
        return False  # sent or ended meanwhile
    if command.late_message:
        moved = command_move(
            command,
            C.FAILED,
            f"key no longer valid: {command.late_message}",
            locked=True,
            error_type="KEY_NOT_ACTIVE",
            error_message=command.late_message,
        )
    else:
        moved = command_move(command, C.EXPIRED, "not sent within the send window", locked=True)
    return moved is not None


def command_refusal(command: VehicleCommand, now: datetime.datetime) -> str | None:
    """Why the worker would not send this command at `now` (None: it would), from its row."""
    if command.status != C.QUEUED:
        return command.error_message or _("This command is no longer waiting to be sent.")
    if command.not_after is not None and now >= command.not_after:
        return command.late_message or _("It was not sent in time.")
    return None


def wanted_locked(action: str) -> bool:
    return action == CommandAction.LOCK


def user_message(error: provider.VehicleCloudError) -> str:
    """What the car or its cloud said, in words for people: its own suggested message, or ours
    for its kind of error (never the raw type and code)."""
    if error.user_message:
        return error.user_message
    for kind, message in PLAIN_MESSAGES.items():
        if isinstance(error, kind):
            return message
    return PLAIN_MESSAGES[provider.InvalidRequest]
