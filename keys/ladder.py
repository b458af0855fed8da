"""At the car and it won't open: what carshare does when the renter says so.

The renter's trip page (and the API) offers "I'm at the car and it won't open" once the trip has
started and the car has not opened. at_car() climbs the first rungs at once:

1. an immediate retry: the start's unlock, if it is waiting out a retry pause, is due now (never
   sooner after its last send than the make allows); if it is on its way, it is left alone; if
   it has ended (the start window spent, a refusal), the renter's own unlock is sent under their
   key, audited and rate-limited like any press, and the start follows that one;
2. the owner is asked, once, to unlock the car themselves: an email with the renter's name and
   phone and a one-tap link to the owner's unlock (keys.views.start_rescue), which is recorded
   as an override, shown to the renter, like every owner unlock during a trip.

Then, if the owner left one, the car's fallback (a lockbox code, where a spare key is): shown by
fallback_reveal() to the holder of a key open now, once they said they are at the car or the
start's unlock gave up, and never otherwise; every look is an audit entry, allowed or refused.

The key clock (keys.startunlocks) sees the car open, whichever command opened it, and tells
whoever was alerted.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from keys import startunlocks, tasks_email, use
from keys.audit import audit_record, audited_refusal
from keys.commands import key_refusal
from keys.errors import KeyRefused
from keys.models import AuditAction, DigitalKey, KeyKind, StartUnlock, StartUnlockStatus
from vehicles import commands as vehicle_commands
from vehicles.models import CommandAction, CommandStatus, VehicleCommand
from vehicles.selectors import car_fallback

S = StartUnlockStatus
C = CommandStatus


@dataclass(frozen=True)
class AtCar:
    """What at_car() did: `retry` is now (the start's unlock made due), in_flight (it is being
    sent), sent (a new unlock under the renter's key) or open (the car opened already)."""

    retry: str
    command: VehicleCommand | None
    owner_asked: bool


def start_unlock_of(*, key: DigitalKey) -> StartUnlock | None:
    """The start unlock of the key's trip (a co-driver's shared key finds the trip's)."""
    if key.booking_id is None:
        return None
    return (
        StartUnlock.objects.select_related("command")
        .filter(key__booking_id=key.booking_id, key__kind=KeyKind.TRIP)
        .first()
    )


def at_car(*, key: DigitalKey, user: User, via: str = "web") -> AtCar:
    """The holder of `key` is at the car and it will not open (see the module's docstring).
    Raises KeyRefused when the key does not open the car now."""
    if key.holder_id != user.pk:
        raise KeyRefused("not_allowed", _("Only the key's holder can say they are at the car."))
    refusal = key_refusal(key=key, action=CommandAction.UNLOCK, now=timezone.now())
    if refusal is not None:
        raise refusal
    start = start_unlock_of(key=key)
    # A start that opened already (the car may have locked itself again since): the renter's
    # own unlock, as for any start whose unlock has ended.
    command = start.command if start is not None and start.status != S.OPENED else None
    if command is not None and command.status == C.QUEUED:
        retry = "now" if vehicle_commands.vehicle_command_hurry(command_id=command.pk) else ""
    elif command is not None and command.status == C.SENT:
        retry = "in_flight"
    else:
        retry = ""
    owner_asked = _ask_owner(start)  # asked even if the renter's own press is refused below
    if not retry:
        command = use.car_command_request(user=user, action=CommandAction.UNLOCK, key=key, via=via)
        retry = "sent"
        if start is not None:
            with transaction.atomic(durable=True):
                startunlocks.start_unlock_follow(start=start, command=command)
    return AtCar(retry=retry, command=command, owner_asked=owner_asked)


def _ask_owner(start: StartUnlock | None) -> bool:
    """Rung 2, once per start: the owner is asked to unlock the car themselves."""
    if start is None:
        return False
    now = timezone.now()
    with transaction.atomic(durable=True):
        StartUnlock.objects.filter(pk=start.pk, at_car_at__isnull=True).update(at_car_at=now)
        asked = StartUnlock.objects.filter(pk=start.pk, owner_asked_at__isnull=True).update(
            owner_asked_at=now
        )
        if asked:
            tasks_email.send_owner_at_car_request.delay_on_commit(start_unlock_id=start.pk)
    return True


def at_car_words(done: AtCar, *, owner: User) -> str:
    """What the renter is told after saying they are at the car."""
    name = owner.first_name or _("the owner")
    if done.retry == "now":
        first = _("carshare is trying to open the car again right now.")
    elif done.retry == "in_flight":
        first = _("carshare is sending the unlock to the car right now.")
    else:
        first = _("carshare sent a new unlock to the car.")
    if done.owner_asked:
        return (
            first + " " + _("We have asked %(name)s to unlock it and to call you.") % {"name": name}
        )
    return first


def at_car_offered(*, key: DigitalKey, start: StartUnlock | None, now: datetime.datetime) -> bool:
    """Whether the trip page and the API offer "I'm at the car" to the holder of `key` now: the
    trip has started, the key opens the car, and the car has not opened (or its start ended)."""
    if start is None or start.starts_at > now or start.status not in (S.PENDING, S.FAILED):
        return False
    return key_refusal(key=key, action=CommandAction.UNLOCK, now=now) is None


def fallback_offered(*, key: DigitalKey, start: StartUnlock | None, now: datetime.datetime) -> bool:
    """Whether the holder of `key` may see the car's fallback now (see fallback_reveal)."""
    if start is None or not key.car.fallback_encrypted or start.starts_at > now:
        return False
    if key_refusal(key=key, action=CommandAction.UNLOCK, now=now) is not None:
        return False
    stuck = start.at_car_at is not None or start.status == S.FAILED
    return stuck and start.status != S.CANCELLED


def fallback_reveal(*, key: DigitalKey, user: User, via: str = "web") -> str:
    """The owner's fallback for the car, for the holder of `key` at a car that would not open;
    audited. Raises KeyRefused (audited too) for anyone else, outside the window, or while the
    remote unlock is still expected to work."""
    with audited_refusal(
        car_id=key.car_id, key=key, actor=user, action=AuditAction.REVEAL_FALLBACK, via=via
    ):
        if key.holder_id != user.pk:
            raise KeyRefused("not_allowed", _("Only the key's holder can see this."))
        if not fallback_offered(key=key, start=start_unlock_of(key=key), now=timezone.now()):
            raise KeyRefused(
                "fallback_not_offered",
                _("The fallback is shown only at a car that would not open, during the trip."),
            )
        with transaction.atomic(durable=True):
            audit_record(
                car_id=key.car_id,
                key=key,
                actor=user,
                action=AuditAction.REVEAL_FALLBACK,
                via=via,
            )
        return car_fallback(key.car)
