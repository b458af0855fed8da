"""Using keys: every lock and unlock a person asks of a car. A holder's under their key, the
owner's own (Lock now, an unlock during someone else's trip only by a recorded override), an
admin's force lock; and the rate limits. A command asked under a key carries the key's window
end as its own deadline (keys.commands.key_deadline); ending or revoking the key withdraws it
(keys.lifecycle.key_move), so the vehicle worker checks nothing but the command's row. The
system's own commands (the unlock at a trip's start, the end lock) are keys.commands.

Every attempt, allowed or denied, leaves an AuditEntry (keys.audit). An allowed one is recorded
in the same transaction as its command in the outbox, so neither exists without the other; a
denied one in a transaction of its own (audited_refusal).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from keys import commands as key_commands
from keys.audit import audit_record, audited_refusal
from keys.errors import KeyRefused
from keys.lifecycle import key_open_on_first_use
from keys.models import AuditAction, DigitalKey, KeyKind, KeyStatus
from vehicles import commands as vehicle_commands
from vehicles.cloud import outbox
from vehicles.models import Car, CommandAction, CommandReason, VehicleCommand

K = KeyStatus
ACTIONS = (CommandAction.LOCK, CommandAction.UNLOCK)


# --- Rate limits ---------------------------------------------------------------------------

# Per-person unlocks are counted under a transaction-scoped advisory lock (this namespace, the
# person's id); per-car ones are already serialised by the car's row lock.
_PERSON_UNLOCKS_LOCK = 0x6B657973  # "keys"


def _unlock_admission(*, action: str, user: User, car_id: int) -> Callable[[], None] | None:
    """Unlocks are rate-limited per person and per car: a stolen session or a stuck client
    cannot hammer a car (its 12 V battery and the vehicle cloud's quota pay for each one).
    Locking never is: a renter must always be able to lock up.

    The check runs inside the command's transaction, under the car's row lock, only when a new
    command is about to be written: a refused press or one that joined an unlock already on its
    way costs nothing. The log it counts is the accepted commands themselves (their
    requested_at), in a window sliding with the clock, so the count and the command commit or
    roll back together and a burst cannot overshoot."""
    if action != CommandAction.UNLOCK:
        return None

    def admit() -> None:
        wait = _unlock_wait(user_id=user.pk, car_id=car_id, now=timezone.now())
        if wait is not None:
            raise KeyRefused(
                "rate_limited",
                _("Too many unlock attempts; try again in %(s)s seconds.") % {"s": wait},
                retry_after=wait,
            )

    return admit


def _unlock_wait(*, user_id: int, car_id: int, now: datetime.datetime) -> int | None:
    """Seconds until one more unlock is allowed for the person and the car; None: allowed."""
    with connection.cursor() as cursor:
        # Two cars pressed by one person at once must not both take the person's last unlock.
        # The two-key form takes int4s: ids past 2**31 share a lock, which only serialises more.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [_PERSON_UNLOCKS_LOCK, user_id % 2**31]
        )
    person_limit, person_window = settings.KEY_UNLOCK_RATE_PER_PERSON
    car_limit, car_window = settings.KEY_UNLOCK_RATE_PER_CAR
    unlocks = VehicleCommand.objects.filter(
        action=CommandAction.UNLOCK, reason__in=outbox.PERSON_REASONS
    )
    waits = [
        wait
        for wait in (
            _window_wait(unlocks.filter(actor_id=user_id), person_limit, person_window, now),
            _window_wait(unlocks.filter(car_id=car_id), car_limit, car_window, now),
        )
        if wait is not None
    ]
    return max(waits) if waits else None


def _window_wait(
    accepted: QuerySet[VehicleCommand], limit: int, window_s: int, now: datetime.datetime
) -> int | None:
    """With `limit` or more accepted in the last `window_s` seconds: the seconds until the
    oldest of the newest `limit` leaves the window (the next one may go then)."""
    window = datetime.timedelta(seconds=window_s)
    if limit <= 0:
        return window_s
    newest = (
        accepted.filter(requested_at__gt=now - window)
        .order_by("-requested_at")
        .values_list("requested_at", flat=True)[limit - 1 : limit]
    )
    leaving = next(iter(newest), None)
    if leaving is None:
        return None
    return max(1, math.ceil((leaving + window - now).total_seconds()))


# --- Every command a person asks of a car -------------------------------------------------------


def _reason_for(key: DigitalKey) -> str:
    return CommandReason.SERVICE if key.kind == KeyKind.SERVICE else CommandReason.RENTER


def car_command_request(
    *,
    user: User,
    action: str,
    key: DigitalKey | None = None,
    car: Car | None = None,
    override: bool = False,
    note: str = "",
    via: str = "web",
) -> VehicleCommand:
    """Every lock and unlock a person asks of a car, in one place: a holder under their `key`,
    or (with `car` and no key) its owner, who locks at any time and unlocks during someone
    else's trip or service window only with `override` and a `note`, recorded and shown to that
    key's holder, or an admin. Every attempt is audited, allowed or refused (KeyRefused). A
    press while the same action is on its way is answered with that command."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}")
    if key is not None:
        with audited_refusal(car_id=key.car_id, key=key, actor=user, action=action, via=via):
            return _holder_command(key=key, user=user, action=action, via=via)
    if car is None:
        raise ValueError("car_command_request() needs the key or the car")
    # Whose key is open now decides an unlock (the override, shown to that holder). A lock is
    # the owner's at any time: its audit entry names the key open then all the same, read by
    # the entry's own INSERT (Lock now is measured: bench/README.md).
    in_use = None
    if action == CommandAction.UNLOCK:
        in_use = car_key_in_use(car_id=car.pk, now=timezone.now())
    audited = AuditAction.LOCK if action == CommandAction.LOCK else AuditAction.UNLOCK
    if action == CommandAction.UNLOCK and in_use is not None:
        audited = AuditAction.OVERRIDE_UNLOCK
    with audited_refusal(car_id=car.pk, key=in_use, actor=user, action=audited, via=via):
        return _owner_command(
            car=car,
            user=user,
            action=action,
            audited=audited,
            in_use=in_use,
            override=override,
            note=note,
            via=via,
        )


def _holder_command(*, key: DigitalKey, user: User, action: str, via: str) -> VehicleCommand:
    if key.holder_id != user.pk:
        # Access selectors give strangers 404 before this; a guard for other callers.
        raise KeyRefused("not_allowed", _("Only the key's holder can use it."))
    if refusal := key_commands.key_refusal(key=key, action=action, now=timezone.now()):
        raise refusal
    return _key_command_record(key=key, user=user, action=action, via=via)


def _enqueue(**kwargs: Any) -> VehicleCommand:
    """The outbox's refusal (no connection, needs reconnecting) in the words keys answers in."""
    try:
        return vehicle_commands.vehicle_command_enqueue(**kwargs)
    except vehicle_commands.CommandRefused as error:
        raise KeyRefused(error.code, str(error)) from error


@transaction.atomic(durable=True)
def _key_command_record(*, key: DigitalKey, user: User, action: str, via: str) -> VehicleCommand:
    now = timezone.now()
    vehicle_commands.car_lock(car_id=key.car_id)  # the car before the key, like every path
    current = (
        DigitalKey.objects.select_for_update(of=("self",)).select_related("car").get(pk=key.pk)
    )
    # The window may be open while the key clock has not come by yet.
    current = key_open_on_first_use(key=current, actor=user)
    if refusal := key_commands.key_refusal(key=current, action=action, now=now):
        raise refusal  # revoked or expired between the check and the lock
    command = _enqueue(
        car_id=current.car_id,
        action=action,
        reason=_reason_for(current),
        actor=user,
        key_id=current.pk,
        admit=_unlock_admission(action=action, user=user, car_id=current.car_id),
        **key_commands.key_deadline(current, action),
    )
    audit_record(
        car_id=current.car_id,
        key=current,
        actor=user,
        action=action,
        via=via,
        command_public_id=command.public_id,
    )
    return command


# --- The owner ------------------------------------------------------------------------------


def car_key_in_use(*, car_id: int, now: datetime.datetime) -> DigitalKey | None:
    """Someone else's key that is open on the car now (a trip or a service window)."""
    return _keys_in_use(car_id=car_id, now=now).select_related("holder").first()


def _keys_in_use(*, car_id: int, now: datetime.datetime) -> QuerySet[DigitalKey]:
    return DigitalKey.objects.filter(
        car_id=car_id,
        status=K.ACTIVE,
        kind__in=[KeyKind.TRIP, KeyKind.SERVICE],
        valid_from__lte=now,
        valid_until__gt=now,
    ).order_by("pk")


def _owner_command(
    *,
    car: Car,
    user: User,
    action: str,
    audited: str,
    in_use: DigitalKey | None,
    override: bool,
    note: str,
    via: str,
) -> VehicleCommand:
    if car.owner_id != user.pk and not user.is_staff:
        raise KeyRefused("not_allowed", _("Only the car's owner can do that."))
    overriding = audited == AuditAction.OVERRIDE_UNLOCK
    if overriding and in_use is not None and (not override or not note.strip()):
        raise KeyRefused(
            "override_required",
            _(
                "%(name)s holds the key now. To unlock anyway, confirm the override "
                "and say why: %(name)s will see it."
            )
            % {"name": in_use.holder.get_short_name()},
        )
    return _owner_command_record(
        car=car, user=user, action=action, audited=audited, key=in_use, note=note, via=via
    )


@transaction.atomic(durable=True)
def _owner_command_record(
    *,
    car: Car,
    user: User,
    action: str,
    audited: str,
    key: DigitalKey | None,
    note: str,
    via: str,
) -> VehicleCommand:
    reason = CommandReason.OWNER if car.owner_id == user.pk else CommandReason.ADMIN
    # Locks the car's row first, before the audit row below points at the key in use.
    command = _enqueue(
        car_id=car.pk,
        action=action,
        reason=reason,
        actor=user,
        admit=_unlock_admission(action=action, user=user, car_id=car.pk),
    )
    audit_record(
        car_id=car.pk,
        key=key,
        # A lock looked up no key: its entry names the one open now, inside its own INSERT.
        key_id=None
        if key is not None or action != CommandAction.LOCK
        else Subquery(_keys_in_use(car_id=car.pk, now=timezone.now()).values("pk")[:1]),
        actor=user,
        action=audited,
        via=via,
        detail=note.strip(),
        command_public_id=command.public_id,
    )
    return command
