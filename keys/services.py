"""Every write to digital keys: issuing, sharing, revoking, the trip hooks and the key clock.

A key goes issued → active → expired, or revoked from issued or active (keys.models.KEY_MOVES).
_key_move() is the one place a status changes; each change leaves a KeyEvent. Moves are
conditional (None when the key is no longer where the caller saw it), so the key clock, the trip
clock and a person pressing a button may all reach for the same move and it happens once.

Bookings sits above keys and calls the trip hooks (trip_key_issue, trip_keys_start,
trip_keys_end, trip_keys_revoke) inside the transaction that moves the booking: key rows, the
unlock or lock in the command outbox and the booking's status commit together or not at all.
A service key's window holds the car like an owner block; bookings owns the Hold table, so it
hands keys a WindowHolds (register_window_holds, from its AppConfig.ready()).

Using a key (lock, unlock, owner override) lives in keys.use; the lock that must reach the car at
the end of a trip or service window in keys.endlocks.
"""

from __future__ import annotations

import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from keys import endlocks, tasks
from keys.models import (
    KEY_MOVES,
    LIVE_STATUSES,
    AuditAction,
    AuditEntry,
    DigitalKey,
    KeyEvent,
    KeyKind,
    KeyStatus,
)
from vehicles.models import Car

K = KeyStatus
MAX_SHARED_KEYS_PER_TRIP = 5
MAX_SERVICE_WINDOW = datetime.timedelta(days=14)
# Key-clock moves due within this horizon get an ETA task; the run_key_clock sweep (every 15 s)
# catches everything else, since Redis may redeliver far-future ETAs (visibility timeout).
KEY_CLOCK_HORIZON = datetime.timedelta(hours=1)


def lock_grace() -> datetime.timedelta:
    """After a window ends its holder may still lock (never unlock) for this long."""
    return datetime.timedelta(minutes=settings.KEY_LOCK_GRACE_MINUTES)


class KeyRefused(Exception):
    """The rules refuse; str(error) can be shown as is and .code tells programs which rule.

    Codes: key_not_active (outside the window, revoked, expired), rate_limited (retry_after
    seconds), not_available (a service window overlaps a trip or block), no_such_user,
    not_eligible, invalid_window, not_allowed, plus vehicles' not_connected/needs_reconnecting.
    """

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


# --- The one place a status changes ---------------------------------------------------------


def _key_move(
    key: DigitalKey | int, to: str, *, actor: User | None, reason: str = "", **fields: object
) -> DigitalKey | None:
    """Move the key under a row lock, with an event row; None if it is not where it could move."""
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
    return current


def _create_key(*, actor: User | None, reason: str, **fields: object) -> DigitalKey:
    key = DigitalKey.objects.create(**fields)
    KeyEvent.objects.create(key=key, actor=actor, old_status="", new_status=K.ISSUED, reason=reason)
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
    command_public_id: object = None,
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
        kind=KeyKind.TRIP,
        car=car,
        holder=renter,
        booking_id=booking_id,
        valid_from=starts_at - datetime.timedelta(minutes=car.early_access_minutes),
        valid_until=ends_at,
        lock_until=ends_at + lock_grace(),
    )


def _trip_keys(booking_id: int) -> list[DigitalKey]:
    """The trip key first, then its shared keys; row-locked in id order (no deadlocks)."""
    keys = list(DigitalKey.objects.select_for_update().filter(booking_id=booking_id).order_by("pk"))
    return sorted(keys, key=lambda k: k.kind != KeyKind.TRIP)


def trip_keys_start(*, booking_id: int) -> DigitalKey | None:
    """The trip starts: its key works now, and the car unlocks unless the owner turned that off.

    The unlock goes into the command outbox in the booking's transaction; the vehicle worker
    sends it once that commits, after checking again that the key is still good.
    """
    keys = _trip_keys(booking_id)
    if not keys or keys[0].kind != KeyKind.TRIP:
        return None
    trip_key = keys[0]
    now = timezone.now()
    for key in keys:
        if key.status == K.ISSUED and key.valid_from <= now:
            _key_move(key, K.ACTIVE, actor=None, reason=_("Trip start"))
    trip_key.refresh_from_db()
    if trip_key.status != K.ACTIVE or not trip_key.car.unlock_at_start:
        return trip_key
    from keys import use  # use imports services: import at call time

    use.system_command(key=trip_key, action="unlock", reason="trip_start")
    return trip_key


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
        fields: dict[str, object] = {}
        if key.valid_until > now:
            fields["valid_until"] = max(now, key.valid_from + datetime.timedelta(seconds=1))
        if key.lock_until > now + lock_grace():
            fields["lock_until"] = max(now + lock_grace(), fields.get("valid_until", now))
        if fields:
            DigitalKey.objects.filter(pk=key.pk).update(**fields)
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
            key, K.REVOKED, actor=actor, reason=reason, revoked_by=actor, revoke_reason=reason[:200]
        ):
            revoked += 1
            if was_active and key.kind == KeyKind.TRIP:
                endlocks.end_lock_begin(key=key, reason="trip_end")
    return revoked


# --- Shared keys ----------------------------------------------------------------------------


def _user_by_email(email: str) -> User | None:
    return User.objects.filter(email__iexact=email.strip(), is_active=True).first()


def _has_verified_email(user: User) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()


def _window_within(
    key: DigitalKey, starts_at: datetime.datetime | None, ends_at: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    start = starts_at or key.valid_from
    end = ends_at or key.valid_until
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValueError("Key windows must be timezone-aware.")
    if end <= start:
        raise KeyRefused("invalid_window", _("The key must end after it starts."))
    if start < key.valid_from or end > key.valid_until:
        raise KeyRefused(
            "invalid_window",
            _("A shared key must fit inside the trip (%(start)s to %(end)s).")
            % {
                "start": local_time(key.car, key.valid_from),
                "end": local_time(key.car, key.valid_until),
            },
        )
    if end <= timezone.now():
        raise KeyRefused("invalid_window", _("That time is already over."))
    return start, end


def _check_share(
    *,
    key: DigitalKey,
    user: User,
    email: str,
    starts_at: datetime.datetime | None,
    ends_at: datetime.datetime | None,
) -> tuple[User, datetime.datetime, datetime.datetime]:
    if key.holder_id != user.pk or key.kind != KeyKind.TRIP:
        raise KeyRefused("not_allowed", _("Only the renter can share a trip key."))
    if key.status not in LIVE_STATUSES or key.valid_until <= timezone.now():
        raise KeyRefused("key_not_active", _("This trip is over; its key can't be shared."))
    start, end = _window_within(key, starts_at, ends_at)
    co_driver = _user_by_email(email)
    if co_driver is None:
        raise KeyRefused(
            "no_such_user",
            _("Nobody with that email has a carshare account; ask them to sign up first."),
        )
    if co_driver.pk == user.pk:
        raise KeyRefused("not_eligible", _("You already hold this trip's key."))
    if co_driver.pk == key.car.owner_id:
        raise KeyRefused("not_eligible", _("The owner doesn't need a key to their own car."))
    if not _has_verified_email(co_driver):
        raise KeyRefused("not_eligible", _("Your co-driver must verify their email address first."))
    last_day = end.astimezone(ZoneInfo(key.car.time_zone)).date()
    if not co_driver.has_valid_licence(through=last_day):
        raise KeyRefused(
            "not_eligible",
            _(
                "Your co-driver needs a driving licence on carshare valid through the end of the trip."
            ),
        )
    shared = DigitalKey.objects.filter(parent=key, status__in=LIVE_STATUSES)
    if shared.filter(holder=co_driver).exists():
        raise KeyRefused("not_eligible", _("This person already has a key for this trip."))
    if shared.count() >= MAX_SHARED_KEYS_PER_TRIP:
        raise KeyRefused(
            "not_eligible",
            _("A trip can have at most %(n)s co-drivers.") % {"n": MAX_SHARED_KEYS_PER_TRIP},
        )
    return co_driver, start, end


@transaction.atomic(durable=True)
def key_share(
    *,
    key: DigitalKey,
    user: User,
    email: str,
    starts_at: datetime.datetime | None = None,
    ends_at: datetime.datetime | None = None,
    via: str = "web",
) -> DigitalKey:
    """The renter gives a co-driver a key for all or part of the trip; it ends with the trip."""
    key = DigitalKey.objects.select_for_update().select_related("car").get(pk=key.pk)
    co_driver, start, end = _check_share(
        key=key, user=user, email=email, starts_at=starts_at, ends_at=ends_at
    )
    shared = _create_key(
        actor=user,
        reason=_("Shared by %(name)s") % {"name": user.get_short_name()},
        kind=KeyKind.SHARED,
        car=key.car,
        holder=co_driver,
        issued_by=user,
        booking_id=key.booking_id,
        parent=key,
        valid_from=start,
        valid_until=end,
        lock_until=min(key.lock_until, end + lock_grace()),
    )
    if key.status == K.ACTIVE and start <= timezone.now():
        shared = (
            _key_move(shared, K.ACTIVE, actor=user, reason=_("Shared during the trip")) or shared
        )
    audit_record(
        car_id=key.car_id,
        key=shared,
        actor=user,
        action=AuditAction.SHARE,
        via=via,
        detail=f"to {co_driver.email}",
    )
    tasks.send_key_email.delay_on_commit(key_id=shared.pk, kind="issued")
    return shared


# --- Service keys -----------------------------------------------------------------------------


class WindowHolds(Protocol):
    """What bookings offers keys: reserve a service window against trips and blocks."""

    def is_free(
        self, *, car_id: int, starts_at: datetime.datetime, ends_at: datetime.datetime
    ) -> bool: ...

    def reserve(
        self, *, car_id: int, key_id: int, starts_at: datetime.datetime, ends_at: datetime.datetime
    ) -> None: ...

    def release(self, *, key_id: int) -> None: ...

    def is_conflict(self, error: IntegrityError) -> bool: ...


_window_holds: WindowHolds | None = None


def register_window_holds(holds: WindowHolds) -> None:
    """bookings registers itself from its AppConfig.ready() (one slot; again replaces it)."""
    global _window_holds  # a one-slot registry, set once at start-up
    _window_holds = holds


def _holds() -> WindowHolds:
    if _window_holds is None:
        raise RuntimeError("Service windows need the bookings app (its ready() registers holds).")
    return _window_holds


NOT_AVAILABLE = _("The car is booked or blocked for part of that time.")


def _check_service_key(
    *, car: Car, user: User, email: str, starts_at: datetime.datetime, ends_at: datetime.datetime
) -> User:
    if car.owner_id != user.pk and not user.is_staff:
        raise KeyRefused("not_allowed", _("Only the car's owner can give out service keys."))
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise ValueError("Key windows must be timezone-aware.")
    if ends_at <= starts_at:
        raise KeyRefused("invalid_window", _("The key must end after it starts."))
    if ends_at <= timezone.now():
        raise KeyRefused("invalid_window", _("That time is already over."))
    if ends_at - starts_at > MAX_SERVICE_WINDOW:
        raise KeyRefused("invalid_window", _("A service key lasts at most 14 days."))
    technician = _user_by_email(email)
    if technician is None:
        raise KeyRefused(
            "no_such_user",
            _("Nobody with that email has a carshare account; ask them to sign up first."),
        )
    if technician.pk == car.owner_id:
        raise KeyRefused("not_eligible", _("You don't need a key to your own car."))
    if not _has_verified_email(technician):
        raise KeyRefused("not_eligible", _("The technician must verify their email address first."))
    return technician


def service_key_issue(
    *,
    car: Car,
    user: User,
    email: str,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
    note: str = "",
    via: str = "web",
) -> DigitalKey:
    """The owner gives a technician a key for a window, which no trip may overlap."""
    technician = _check_service_key(
        car=car, user=user, email=email, starts_at=starts_at, ends_at=ends_at
    )
    holds = _holds()
    if not holds.is_free(car_id=car.pk, starts_at=starts_at, ends_at=ends_at):
        raise KeyRefused("not_available", NOT_AVAILABLE)
    try:
        return _service_key_insert(
            car=car,
            user=user,
            technician=technician,
            starts_at=starts_at,
            ends_at=ends_at,
            note=note,
            via=via,
        )
    except IntegrityError as error:
        # A booking won the race between the check and the insert: the exclusion constraint
        # refused the window's hold, and the whole transaction rolled back.
        if holds.is_conflict(error):
            raise KeyRefused("not_available", NOT_AVAILABLE) from error
        raise


@transaction.atomic(durable=True)
def _service_key_insert(
    *,
    car: Car,
    user: User,
    technician: User,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
    note: str,
    via: str,
) -> DigitalKey:
    key = _create_key(
        actor=user,
        reason=note or _("Service"),
        kind=KeyKind.SERVICE,
        car=car,
        holder=technician,
        issued_by=user,
        valid_from=starts_at,
        valid_until=ends_at,
        lock_until=ends_at + lock_grace(),
        note=note[:200],
    )
    _holds().reserve(car_id=car.pk, key_id=key.pk, starts_at=starts_at, ends_at=ends_at)
    if ends_at - timezone.now() <= KEY_CLOCK_HORIZON:
        tasks.end_service_window.apply_async_on_commit(kwargs={"key_id": key.pk}, eta=ends_at)
    audit_record(
        car_id=car.pk,
        key=key,
        actor=user,
        action=AuditAction.ISSUE_SERVICE,
        via=via,
        detail=f"to {technician.email}",
    )
    tasks.send_key_email.delay_on_commit(key_id=key.pk, kind="issued")
    return key


# --- Revoking -------------------------------------------------------------------------------


def _may_revoke(key: DigitalKey, user: User) -> bool:
    if user.is_staff:
        return True
    if key.kind == KeyKind.SHARED:
        # The renter who shared it, or the co-driver handing it back.
        return user.pk in (key.holder_id, key.parent.holder_id if key.parent else None)
    if key.kind == KeyKind.SERVICE:
        return user.pk == key.car.owner_id
    return False  # a trip key ends with its booking: cancel the booking instead


def key_revoke(*, key: DigitalKey, user: User, reason: str = "", via: str = "web") -> DigitalKey:
    """Take a key back now: shared keys (renter), service keys (owner), any key (admin)."""
    key = DigitalKey.objects.select_related("car", "parent").get(pk=key.pk)
    if not _may_revoke(key, user):
        error = KeyRefused("not_allowed", _("You can't revoke this key."))
        audit_denied(
            car_id=key.car_id, key=key, actor=user, action=AuditAction.REVOKE, error=error, via=via
        )
        raise error
    return _key_revoke_apply(key=key, user=user, reason=reason, via=via)


@transaction.atomic(durable=True)
def _key_revoke_apply(*, key: DigitalKey, user: User, reason: str, via: str) -> DigitalKey:
    was_active = key.status == K.ACTIVE
    reason = reason or _("Revoked by %(name)s") % {"name": user.get_short_name()}
    revoked = _key_move(
        key, K.REVOKED, actor=user, reason=reason, revoked_by=user, revoke_reason=reason[:200]
    )
    if revoked is None:
        raise KeyRefused("key_not_active", _("This key has already ended."))
    for shared in DigitalKey.objects.filter(parent=key, status__in=LIVE_STATUSES).order_by("pk"):
        _key_move(
            shared,
            K.REVOKED,
            actor=user,
            reason=reason,
            revoked_by=user,
            revoke_reason=reason[:200],
        )
    if key.kind == KeyKind.SERVICE:
        _holds().release(key_id=key.pk)  # the rest of the window is free for trips again
        if was_active:
            endlocks.end_lock_begin(key=revoked, reason="service_end")
    elif key.kind == KeyKind.TRIP and was_active:
        endlocks.end_lock_begin(key=revoked, reason="trip_end")
    audit_record(car_id=key.car_id, key=key, actor=user, action=AuditAction.REVOKE, via=via)
    if key.kind != KeyKind.TRIP and user.pk != key.holder_id:
        tasks.send_key_email.delay_on_commit(key_id=key.pk, kind="revoked")
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
        DigitalKey.objects.select_for_update()
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


def keys_due(*, now: datetime.datetime) -> dict[str, list[int]]:
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


def other_live_keys_q(*, key: DigitalKey) -> Q:
    """Keys of the same car that belong to another trip or service window."""
    q = Q(car_id=key.car_id, status=K.ACTIVE) & ~Q(pk=key.pk)
    if key.booking_id is not None:
        q &= ~Q(booking_id=key.booking_id)
    return q
