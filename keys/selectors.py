"""Reads of keys: the access doors, the lists for holders and owners, and the audit log."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from carshare.db import one_or_404
from keys.models import (
    LIVE_STATUSES,
    AuditAction,
    AuditEntry,
    DigitalKey,
    EndLock,
    EndLockStatus,
    KeyKind,
    KeyStatus,
    StartUnlock,
    StartUnlockStatus,
)
from vehicles import selectors as car_selectors
from vehicles.models import Car, CommandAction, CommandStatus, VehicleCommand

K = KeyStatus
# A trip's car counts as opened by an unlock confirmed from this long before its start (early
# access, a quick renter): keys.startunlocks and trips_never_opened agree on it.
OPENED_SINCE_MARGIN = datetime.timedelta(minutes=15)


def _keys() -> QuerySet[DigitalKey]:
    return DigitalKey.objects.select_related("car", "car__owner", "holder", "parent__holder")


def _one(keys: QuerySet[DigitalKey], public_id: UUID | str) -> DigitalKey:
    return one_or_404(keys, public_id=public_id, message="No such key.")


def key_for_holder(*, user: User, public_id: UUID | str) -> DigitalKey:
    """The key for the one person who may use it; anyone else (the owner too) gets 404."""
    if not user.is_authenticated:
        raise Http404("No such key.")
    return _one(_keys().filter(holder=user), public_id)


def key_for_viewer(*, user: User, public_id: UUID | str) -> DigitalKey:
    """The key for its holder, the car's owner, the renter who shared it, or staff; else 404."""
    if not user.is_authenticated:
        raise Http404("No such key.")
    keys = _keys()
    if not user.is_staff:
        keys = keys.filter(Q(holder=user) | Q(car__owner=user) | Q(parent__holder=user))
    return _one(keys, public_id)


def keys_of_holder(
    *, user: User, now: datetime.datetime | None = None
) -> dict[str, list[DigitalKey]]:
    """The person's keys: open now, coming up, and past (last 50)."""
    now = now or timezone.now()
    mine = _keys().filter(holder=user)
    live = list(mine.filter(status__in=LIVE_STATUSES, lock_until__gt=now).order_by("valid_from"))
    return {
        "active": [k for k in live if k.valid_from <= now],
        "upcoming": [k for k in live if k.valid_from > now],
        "past": list(mine.exclude(pk__in=[k.pk for k in live]).order_by("-valid_until")[:50]),
    }


def keys_of_owner(*, user: User) -> QuerySet[DigitalKey]:
    """Every key to the owner's cars, newest window first."""
    return _keys().filter(car__owner=user).order_by("-valid_from")[:200]


def keys_of_car(*, car_id: int) -> QuerySet[DigitalKey]:
    return _keys().filter(car_id=car_id).order_by("-valid_from")


def service_keys_of_car(*, car_id: int) -> QuerySet[DigitalKey]:
    return _keys().filter(car_id=car_id, kind=KeyKind.SERVICE).order_by("-valid_from")[:50]


def trip_key_for_booking(*, booking_id: int) -> DigitalKey | None:
    return _keys().filter(booking_id=booking_id, kind=KeyKind.TRIP).first()


@dataclass(frozen=True)
class EndLockState:
    """What the pages say about the lock at the end of a key's window while it is not done."""

    trouble: bool  # the latest lock failed, or the sweep found a problem (else: on its way)
    code: str  # the car's error code of the latest failed lock ("DOOR_OPEN", ...) or ""
    problem: str  # what the car (or the vehicle cloud) said, as recorded
    attempts: int

    @property
    def door_open(self) -> bool:
        return self.code == car_selectors.DOOR_OPEN

    @property
    def seen(self) -> str:
        """Changes whenever what the pages show of it changes (polling compares it)."""
        return f"{int(self.trouble)}{self.code}{self.attempts}"


def end_lock_state(*, key_id: int) -> EndLockState | None:
    """The pending end lock of this key, or None when there is none or it is done (locked, or
    handed over to the next window)."""
    end_lock = EndLock.objects.filter(key_id=key_id, status=EndLockStatus.PENDING).first()
    if end_lock is None:
        return None
    latest = car_selectors.latest_lock_answer(car_id=end_lock.car_id, since=end_lock.created_at)
    failed = latest is not None and latest.status == CommandStatus.FAILED
    return EndLockState(
        trouble=failed or bool(end_lock.last_problem),
        code=latest.error_code if failed and latest else "",
        problem=(latest.error_message if failed and latest else "") or end_lock.last_problem,
        attempts=end_lock.attempts,
    )


def shared_keys_of(*, key: DigitalKey) -> QuerySet[DigitalKey]:
    return _keys().filter(parent=key).order_by("valid_from", "pk")


def car_for_status_viewer(*, user: User, public_id: UUID | str) -> Car:
    """The car for its owner or for a person holding a key open on it now (not before the
    window, not after the grace): who may see its live status and position. Anyone else
    gets 404."""
    car = Car.objects.filter(public_id=public_id).first() if user.is_authenticated else None
    if car is None or (car.owner_id != user.pk and not _key_open_for_status(user, car.pk)):
        raise Http404("No such car.")
    return car


def _key_open_for_status(user: User, car_id: int) -> bool:
    now = timezone.now()
    return DigitalKey.objects.filter(
        holder=user, car_id=car_id, status=K.ACTIVE, valid_from__lte=now, lock_until__gt=now
    ).exists()


def trips_never_opened(
    *,
    now: datetime.datetime | None = None,
    booking_ids: list[int] | None = None,
    limit: int = 100,
) -> list[int]:
    """The bookings (ids) whose car has not opened TRIP_START_GIVE_UP_MINUTES after their start:
    the start's unlock and the ladder failed (no confirmed unlock of the car since shortly
    before the start, whoever sent it), and the trip key is still active. bookings cancels
    them without a fee."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(minutes=settings.TRIP_START_GIVE_UP_MINUTES)
    opened = VehicleCommand.objects.filter(
        car_id=OuterRef("car_id"),
        action=CommandAction.UNLOCK,
        confirmed_at__gte=OuterRef("starts_at") - OPENED_SINCE_MARGIN,
    )
    stuck = (
        StartUnlock.objects.filter(
            status__in=(StartUnlockStatus.PENDING, StartUnlockStatus.FAILED),
            starts_at__lte=cutoff,
            key__kind=KeyKind.TRIP,
            key__status=KeyStatus.ACTIVE,
            key__booking_id__isnull=False,
        )
        .exclude(Exists(opened))
        .order_by("starts_at")
    )
    if booking_ids is not None:
        stuck = stuck.filter(key__booking_id__in=booking_ids)
    return [pk for pk in stuck.values_list("key__booking_id", flat=True)[:limit] if pk is not None]


def audit_of_car(*, car_id: int, limit: int | None = 100) -> QuerySet[AuditEntry]:
    """The car's audit log, newest first, for its owner and admins (limit=None: all of it, for
    callers that count and page it themselves). Every command a person or the trip clock asks
    of the car has its entry, so this is also the car's history of locks and unlocks: each entry
    carries its command's status (car_command_status, car_command_error, car_confirmed_at)."""
    confirmed = VehicleCommand.objects.filter(public_id=OuterRef("command_public_id"))
    entries = (
        AuditEntry.objects.filter(car_id=car_id)
        .select_related("actor", "key", "key__holder")
        # What became of the entry's command: where it stands, why it failed, and when the car
        # confirmed it (opened, or locked), a moment after the entry was written. Kept on the
        # command, since the log is append-only: the car page's one history of its commands.
        .annotate(
            car_confirmed_at=Subquery(confirmed.values("confirmed_at")[:1]),
            car_command_status=Subquery(confirmed.values("status")[:1]),
            car_command_error=Subquery(confirmed.values("error_message")[:1]),
        )
        .order_by("-at", "-pk")
    )
    return entries[:limit] if limit is not None else entries


def overrides_during(*, key: DigitalKey) -> QuerySet[AuditEntry]:
    """Owner unlocks during this key's window: shown to its holder."""
    return (
        AuditEntry.objects.filter(
            car_id=key.car_id,
            action=AuditAction.OVERRIDE_UNLOCK,
            allowed=True,
            at__gte=key.valid_from,
            at__lt=key.lock_until,
        )
        .select_related("actor")
        .order_by("-at")
    )
