"""The lifecycle of digital keys: the one place a status changes, the trip hooks, the key clock.

A key goes issued → active → expired, or revoked from issued or active (keys.models.KEY_MOVES).
_key_move() is the one place a status changes; each change leaves a KeyEvent. Moves are
conditional (None when the key is no longer where the caller saw it), so the key clock, the trip
clock and a person pressing a button may all reach for the same move and it happens once.

Bookings sits above keys and calls the trip hooks (trip_key_issue, trip_keys_start,
trip_keys_end, trip_keys_revoke) inside the transaction that moves the booking: key rows, the
unlock or lock in the command outbox and the booking's status commit together or not at all.

Giving and taking back keys (sharing, service keys, revoking) lives in keys.grants; using a key
(lock, unlock, owner override) in keys.use; the lock that must reach the car at the end of a trip
or service window in keys.endlocks.
"""

from __future__ import annotations

import datetime
import uuid
from typing import TypedDict
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from accounts.models import User
from carshare.errors import DomainError
from keys import endlocks, tasks
from keys.models import (
    KEY_MOVES,
    LIVE_STATUSES,
    AuditEntry,
    DigitalKey,
    KeyEvent,
    KeyKind,
    KeyStatus,
)
from vehicles import commands as vehicle_commands
from vehicles.models import Car, CommandAction, CommandReason

K = KeyStatus
# Key-clock moves due within this horizon get an ETA task; the run_key_clock sweep (every 15 s)
# catches everything else, since Redis may redeliver far-future ETAs (visibility timeout).
KEY_CLOCK_HORIZON = datetime.timedelta(hours=1)


def lock_grace() -> datetime.timedelta:
    """After a window ends its holder may still lock (never unlock) for this long."""
    return datetime.timedelta(minutes=settings.KEY_LOCK_GRACE_MINUTES)


# Codes for a state of the world rather than the request: trying again later may work, so the
# API answers 409. not_allowed is a 403 and rate_limited a 429; every other code is a rule the
# input broke (400).
CONFLICT_CODES = {
    "key_not_active",
    "not_available",
    "override_required",
    "not_connected",
    "needs_reconnecting",
}


class KeyRefused(DomainError):
    """The rules refuse; str(error) can be shown as is and .code tells programs which rule.

    Codes: key_not_active (outside the window, revoked, expired), rate_limited (retry_after
    seconds), not_available (a service window overlaps a trip or block), no_such_user (a share
    to an unknown address; never shown to the sharer), not_eligible, invalid_window, not_allowed, plus vehicles' not_connected/needs_reconnecting.
    """

    def __init__(
        self, code: str, message: str | Promise, *, retry_after: int | None = None
    ) -> None:
        super().__init__(code, message, retry_after=retry_after)

    @classmethod
    def status_for(cls, code: str) -> int:
        if code == "rate_limited":
            return 429
        if code == "not_allowed":
            return 403  # the person can see the key, but the action is someone else's
        return 409 if code in CONFLICT_CODES else 400


# --- The one place a status changes ---------------------------------------------------------


def _key_move(
    key: DigitalKey | int,
    to: str,
    *,
    actor: User | None,
    reason: str = "",
    presses_fail: bool = True,
    **fields: object,
) -> DigitalKey | None:
    """Move the key under a row lock, with an event row; None if it is not where it could move.

    A key that ends takes its queued commands with it, with the words the holder would be told
    (revoked, expired): a holder's press fails, or with `presses_fail=False` expires, unsent,
    like the system's own."""
    if not transaction.get_connection().in_atomic_block:  # a row lock ends with its transaction
        raise RuntimeError("_key_move() needs the calling service's transaction")
    pk = key.pk if isinstance(key, DigitalKey) else key
    current = DigitalKey.objects.select_for_update().filter(pk=pk).first()
    if current is None or to not in KEY_MOVES.get(current.status, set()):
        return None
    now = timezone.now()
    KeyEvent.objects.create(
        key=current, actor=actor, old_status=current.status, new_status=to, reason=reason[:200]
    )
    current.status = to
    changed = ["status", *fields]
    for name, value in fields.items():
        setattr(current, name, value)
    if to == K.ACTIVE:
        current.activated_at = now
        changed.append("activated_at")
    elif to in (K.EXPIRED, K.REVOKED):
        current.ended_at = now
        changed.append("ended_at")
    current.save(update_fields=changed)
    if to in (K.EXPIRED, K.REVOKED):
        # What the key still had queued never goes: the worker only reads the command's row.
        vehicle_commands.vehicle_commands_withdraw(
            key_id=current.pk,
            note=f"key {to}: {reason}"[:500],
            message=key_ended_message(to),
            fail=presses_fail,
        )
    return current


def key_ended_message(status: str) -> str:
    """What the holder is told about a key that ended, revoked or expired."""
    if status == K.REVOKED:
        return _("This key was revoked.")
    return _("This key has expired.")


def trip_over_message(car: Car, lock_until: datetime.datetime) -> str:
    """What the holder is told about an unlock after the trip, while locking still works."""
    return _("The trip is over: you can only lock the car, until %(at)s.") % {
        "at": local_time(car, lock_until)
    }


def _create_key(
    *, actor: User | None, reason: str, schedule: bool = True, **fields: object
) -> DigitalKey:
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


def local_time(car: Car, at: datetime.datetime) -> str:
    local = at.astimezone(ZoneInfo(car.time_zone))
    if local.date() == timezone.now().astimezone(ZoneInfo(car.time_zone)).date():
        return local.strftime("%H:%M")
    return local.strftime("%d %b %H:%M")


def audit_record(
    *,
    car_id: int,
    key: DigitalKey | None,
    actor: User | None,
    action: str,
    code: str = "ok",
    detail: str = "",
    via: str,
    command_public_id: uuid.UUID | str | None = None,
    staged_for: datetime.datetime | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        car_id=car_id,
        key=key,
        actor=actor,
        action=action,
        allowed=code == "ok",
        code=code,
        detail=detail[:300],
        via=via,
        command_public_id=command_public_id,
        staged_for=staged_for,
    )


@transaction.atomic(durable=True)
def audit_denied(
    *,
    car_id: int,
    key: DigitalKey | None,
    actor: User | None,
    action: str,
    error: KeyRefused,
    via: str,
) -> None:
    """Record a refused attempt in its own transaction (the attempt itself wrote nothing)."""
    audit_record(
        car_id=car_id,
        key=key,
        actor=actor,
        action=action,
        code=error.code,
        detail=str(error),
        via=via,
    )


def key_open_on_first_use(*, key: DigitalKey, actor: User) -> DigitalKey:
    """Inside the caller's transaction: an issued key whose window has opened is opened by its
    holder's first press, without waiting for the key clock."""
    now = timezone.now()
    if key.status == K.ISSUED and key.valid_from <= now < key.lock_until:
        return _key_move(key, K.ACTIVE, actor=actor, reason=_("First use")) or key
    return key


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
    return _create_key(
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
            moved = _key_move(key, K.ACTIVE, actor=None, reason=_("Trip start"))
            if key is trip_key and moved is not None:
                moved.car = key.car  # read with the keys already: no second query for it
                trip_key = moved  # the rows are locked by _trip_keys: nothing else moved them
    if trip_key.status != K.ACTIVE or not trip_key.car.unlock_at_start:
        return trip_key
    if vehicle_commands.command_exists(key_id=trip_key.pk, reason=CommandReason.TRIP_START):
        return trip_key  # staged ahead by trip_unlock_stage: it goes (or went) at the start
    from keys import use  # use imports services: import at call time

    use.system_command(key=trip_key, action=CommandAction.UNLOCK, reason=CommandReason.TRIP_START)
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
    from keys import use

    command = use.system_command(
        key=trip_key,
        action=CommandAction.UNLOCK,
        reason=CommandReason.TRIP_START,
        not_before=starts_at,
    )
    return command is not None


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
            _key_move(key, K.EXPIRED, actor=None, reason=_("The trip ended before this key began"))
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
        if _key_move(
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


# --- The key clock --------------------------------------------------------------------------


@transaction.atomic(durable=True)
def key_activate(*, key_id: int) -> DigitalKey | None:
    """Open the window of an issued key whose time has come; None when nothing to do."""
    now = timezone.now()
    key = (
        DigitalKey.objects.select_for_update()
        .filter(pk=key_id, status=K.ISSUED, valid_from__lte=now, lock_until__gt=now)
        .first()
    )
    if key is None:
        return None
    return _key_move(key, K.ACTIVE, actor=None, reason=_("Window opened"))


@transaction.atomic(durable=True)
def key_expire(*, key_id: int) -> DigitalKey | None:
    now = timezone.now()
    # The car before the key, like every path: expiring withdraws the key's queued commands,
    # which a press or the owner may hold while their audit row points at this key.
    car_id = DigitalKey.objects.filter(pk=key_id).values_list("car_id", flat=True).first()
    if car_id is None:
        return None
    vehicle_commands.car_lock(car_id=car_id)
    key = (
        DigitalKey.objects.select_for_update()
        .filter(pk=key_id, status__in=LIVE_STATUSES, lock_until__lte=now)
        .first()
    )
    if key is None:
        return None
    return _key_move(key, K.EXPIRED, actor=None, reason=_("Window over"))


@transaction.atomic(durable=True)
def service_window_end(*, key_id: int) -> DigitalKey | None:
    """A service window is over: lock the car (the end lock retries and alerts). Once only."""
    now = timezone.now()
    key = (
        # of=("self",): end_lock__isnull is an outer join, whose nullable side can't be locked.
        DigitalKey.objects.select_for_update(of=("self",))
        .filter(
            pk=key_id,
            kind=KeyKind.SERVICE,
            status__in=LIVE_STATUSES,
            valid_until__lte=now,
            end_lock__isnull=True,
        )
        .first()
    )
    if key is None:
        return None
    endlocks.end_lock_begin(key=key, reason="service_end")
    return key


class KeysDue(TypedDict):
    activate: list[int]
    end_service: list[int]
    expire: list[int]
    end_service_soon: list[tuple[int, datetime.datetime]]  # (key id, end of its window)


def keys_due(*, now: datetime.datetime) -> KeysDue:
    """What the key clock has to do now, by job; read without locks (each job re-checks)."""
    live = DigitalKey.objects.filter(status__in=LIVE_STATUSES)
    return {
        "activate": list(
            live.filter(status=K.ISSUED, valid_from__lte=now, lock_until__gt=now).values_list(
                "pk", flat=True
            )[:500]
        ),
        "end_service": list(
            live.filter(
                kind=KeyKind.SERVICE, valid_until__lte=now, end_lock__isnull=True
            ).values_list("pk", flat=True)[:500]
        ),
        "expire": list(live.filter(lock_until__lte=now).values_list("pk", flat=True)[:500]),
        # Service windows ending before the next sweep get an ETA task, for precision.
        "end_service_soon": list(
            live.filter(
                kind=KeyKind.SERVICE,
                valid_until__gt=now,
                valid_until__lte=now + datetime.timedelta(seconds=settings.KEY_CLOCK_SWEEP_S * 2),
            ).values_list("pk", "valid_until")
        ),
    }
