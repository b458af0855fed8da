"""Keys for trips, as bookings asks for them; and the issuing every key goes through.

A key comes into being by key_create(), which schedules the key clock for its window; keys.grants
builds shared and service keys on it. Bookings sits above keys and calls the trip hooks
(trip_key_issue, trip_unlock_stage, trip_keys_start, trip_keys_end, trip_keys_revoke) inside the
transaction that moves the booking: key rows, the unlock or lock in the command outbox and the
booking's status commit together or not at all.

Every move goes through keys.lifecycle.key_move(). Using a key (lock, unlock, owner override) is
keys.use; the lock that must reach the car at the end of a trip or service window keys.endlocks.
"""

from __future__ import annotations

import datetime
from uuid import UUID

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from keys import commands as key_commands
from keys import endlocks, startunlocks, tasks
from keys.errors import trip_over_message
from keys.lifecycle import KEY_CLOCK_HORIZON, key_move, lock_grace
from keys.models import LIVE_STATUSES, DigitalKey, KeyEvent, KeyKind, KeyStatus
from vehicles import commands as vehicle_commands
from vehicles.models import Car, CommandAction, CommandReason

K = KeyStatus


# --- Issuing --------------------------------------------------------------------------------


def key_create(
    *, actor: User | None, reason: str, schedule: bool = True, **fields: object
) -> DigitalKey:
    """A new issued key, with its event row, inside the caller's transaction; the key clock opens
    it when its window does (`schedule=False`: the caller's own move will)."""
    key = DigitalKey.objects.create(**fields)
    KeyEvent.objects.create(key=key, actor=actor, old_status="", new_status=K.ISSUED, reason=reason)
    if schedule:
        _schedule_activation(key)
    return key


def _schedule_activation(key: DigitalKey) -> None:
    """An ETA task at the window's opening when it is near; the sweep covers the rest."""
    now = timezone.now()
    if key.valid_from - now <= KEY_CLOCK_HORIZON:
        tasks.activate_key.apply_async_on_commit(
            kwargs={"key_id": key.pk}, eta=max(key.valid_from, now)
        )


# --- Trip keys: called by bookings inside the booking's transaction -------------------------


def trip_key_issue(
    *,
    booking_id: int,
    booking_public_id: UUID,
    car: Car,
    renter: User,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
) -> DigitalKey:
    """The renter's key for a confirmed trip: from the car's early access before the start to
    the end, plus the grace for locking."""
    existing = DigitalKey.objects.filter(booking_id=booking_id, kind=KeyKind.TRIP).first()
    if existing is not None:
        return existing
    return key_create(
        actor=None,
        reason=_("Booking confirmed"),
        # Without early access the key opens with the trip, whose start moves it (one task
        # per trip at the start, not two); the key clock's sweep still backs it up.
        schedule=car.early_access_minutes > 0,
        kind=KeyKind.TRIP,
        car=car,
        holder=renter,
        booking_id=booking_id,
        booking_public_id=booking_public_id,
        valid_from=starts_at - datetime.timedelta(minutes=car.early_access_minutes),
        valid_until=ends_at,
        lock_until=ends_at + lock_grace(),
    )


def _lock_trip_car(booking_id: int) -> None:
    """Lock the trip's car before its keys: the order every command path takes (a press locks
    the car, then its key), so the trip clock and a press at the start can't deadlock."""
    (
        Car.objects.select_for_update(of=("self",))
        .filter(digital_keys__booking_id=booking_id)
        .values_list("pk", flat=True)
        .first()
    )


def _trip_keys(booking_id: int) -> list[DigitalKey]:
    """The trip key first, then its shared keys; row-locked in id order (no deadlocks), after
    the car's row (vehicles.commands.car_lock: the one lock order of every command path)."""
    _lock_trip_car(booking_id)
    keys = list(
        DigitalKey.objects.select_for_update(of=("self",))
        .select_related("car")  # the car's settings decide what happens at start and end
        .filter(booking_id=booking_id)
        .order_by("pk")
    )
    return sorted(keys, key=lambda k: k.kind != KeyKind.TRIP)


def trip_keys_start(*, booking_id: int) -> DigitalKey | None:
    """The trip starts: its key works now, and the car unlocks unless the owner turned that off.

    The unlock goes into the command outbox in the booking's transaction; the vehicle worker
    sends it once that commits, after checking again that the key is still good.
    """
    keys = _trip_keys(booking_id)
    if not keys or keys[0].kind != KeyKind.TRIP:
        return None
    now = timezone.now()
    trip_key = keys[0]
    for key in keys:
        if key.status == K.ISSUED and key.valid_from <= now:
            moved = key_move(key, K.ACTIVE, actor=None, reason=_("Trip start"))
            if key is trip_key and moved is not None:
                moved.car = key.car  # read with the keys already: no second query for it
                trip_key = moved  # the rows are locked by _trip_keys: nothing else moved them
    if trip_key.status != K.ACTIVE or not trip_key.car.unlock_at_start:
        return trip_key
    if vehicle_commands.command_exists(key_id=trip_key.pk, reason=CommandReason.TRIP_START):
        return trip_key  # staged ahead by trip_unlock_stage: it goes (or went) at the start
    command = key_commands.system_command(
        key=trip_key, action=CommandAction.UNLOCK, reason=CommandReason.TRIP_START
    )
    if command is not None:
        startunlocks.start_unlock_begin(key=trip_key, command=command, starts_at=now)
    return trip_key


def trip_unlock_stage(*, booking_id: int, starts_at: datetime.datetime) -> bool:
    """Inside the caller's transaction, shortly before a trip starts: put its unlock in the
    outbox now, due at the start. At the start the vehicle worker only has to send it, however
    many trips start that minute, instead of waiting for each trip's move to active; the worker
    still checks right before the call that the key was not revoked. Once per trip."""
    _lock_trip_car(booking_id)
    trip_key = (
        DigitalKey.objects.select_for_update()
        .select_related("car")
        .filter(booking_id=booking_id, kind=KeyKind.TRIP, status__in=LIVE_STATUSES)
        .first()
    )
    if trip_key is None or not trip_key.car.unlock_at_start:
        return False
    if vehicle_commands.command_exists(key_id=trip_key.pk, reason=CommandReason.TRIP_START):
        return False
    command = key_commands.system_command(
        key=trip_key,
        action=CommandAction.UNLOCK,
        reason=CommandReason.TRIP_START,
        not_before=starts_at,
    )
    if command is None:
        return False
    startunlocks.start_unlock_begin(key=trip_key, command=command, starts_at=starts_at)
    return True


def trip_keys_end(*, booking_id: int) -> DigitalKey | None:
    """The trip ended (on time or early): unlocking stops now, locking ends after the grace, and
    the car is locked, with an end lock that retries and alerts until the car confirms it."""
    keys = _trip_keys(booking_id)
    if not keys or keys[0].kind != KeyKind.TRIP:
        return None
    now = timezone.now()
    for key in keys:
        if key.status not in LIVE_STATUSES:
            continue
        if key.valid_from > now:
            # A co-driver's share of a part of the trip that will now never come.
            key_move(key, K.EXPIRED, actor=None, reason=_("The trip ended before this key began"))
            continue
        fields: dict[str, datetime.datetime] = {}
        if key.valid_until > now:
            fields["valid_until"] = max(now, key.valid_from + datetime.timedelta(seconds=1))
        if key.lock_until > now + lock_grace():
            fields["lock_until"] = max(now + lock_grace(), fields.get("valid_until", now))
        if fields:
            DigitalKey.objects.filter(pk=key.pk).update(**fields)
        if "valid_until" in fields:
            # Unlocking stopped now: an unlock still queued under the key never goes.
            vehicle_commands.vehicle_commands_withdraw(
                key_id=key.pk,
                note="trip ended",
                message=trip_over_message(key.car, fields.get("lock_until", key.lock_until)),
                actions=[CommandAction.UNLOCK],
            )
    trip_key = keys[0]
    trip_key.refresh_from_db()
    endlocks.end_lock_begin(key=trip_key, reason="trip_end")
    return trip_key


def trip_keys_revoke(*, booking_id: int, actor: User | None, reason: str) -> int:
    """A cancelled trip takes its keys with it; a car opened early (early access) is locked."""
    revoked = 0
    for key in _trip_keys(booking_id):
        was_active = key.status == K.ACTIVE
        if key_move(
            key,
            K.REVOKED,
            actor=actor,
            reason=reason,
            presses_fail=False,  # the trip is off: what it had queued is withdrawn, unsent
            revoked_by=actor,
            revoke_reason=reason[:200],
        ):
            revoked += 1
            if was_active and key.kind == KeyKind.TRIP:
                endlocks.end_lock_begin(key=key, reason="trip_end")
    return revoked
