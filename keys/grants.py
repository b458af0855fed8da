"""Giving keys and taking them back: a renter shares the trip key with a co-driver, an owner
gives a technician a service key for a window, and keys are revoked.

A service key's window holds the car like an owner block: the key takes an occupancy of the
car (vehicles.occupancy) in its own transaction and releases it when revoked.
Every refusal is audited like any other attempt; every move goes through keys.lifecycle.key_move().
"""

from __future__ import annotations

import datetime

from allauth.account.models import EmailAddress
from django.db import IntegrityError, OperationalError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from carshare import db, times
from keys import endlocks, tasks, tasks_email
from keys.audit import audit_record, audited_refusal
from keys.errors import KeyRefused, RecipientRefused, local_time
from keys.lifecycle import KEY_CLOCK_HORIZON, key_move, lock_grace
from keys.models import LIVE_STATUSES, AuditAction, DigitalKey, KeyKind, KeyStatus
from keys.services import key_create
from vehicles import commands as vehicle_commands
from vehicles import occupancy
from vehicles.models import Car, OccupancyKind

K = KeyStatus
MAX_SHARED_KEYS_PER_TRIP = 5
MAX_SERVICE_WINDOW = datetime.timedelta(days=14)


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
    shared = DigitalKey.objects.filter(parent=key, status__in=LIVE_STATUSES)
    # Before looking the person up: a full trip must answer the same whoever the email is.
    if shared.count() >= MAX_SHARED_KEYS_PER_TRIP:
        raise KeyRefused(
            "not_eligible",
            _("A trip can have at most %(n)s co-drivers.") % {"n": MAX_SHARED_KEYS_PER_TRIP},
        )
    if email.strip().lower() == user.email.lower():
        raise KeyRefused("not_eligible", _("You already hold this trip's key."))
    co_driver = _user_by_email(email)
    if co_driver is None:
        raise RecipientRefused(
            "no_such_user",
            _("Nobody with that email has a carshare account; ask them to sign up first."),
            remedy="sign_up",
        )
    if co_driver.pk == key.car.owner_id:
        raise RecipientRefused(
            "not_eligible", _("The owner doesn't need a key to their own car."), remedy=""
        )
    if not _has_verified_email(co_driver):
        raise RecipientRefused(
            "not_eligible",
            _("Your co-driver must verify their email address first."),
            remedy="verify",
        )
    last_day = end.astimezone(times.car_zone(key.car)).date()
    if not co_driver.has_valid_licence(through=last_day):
        raise RecipientRefused(
            "not_eligible",
            _(
                "Your co-driver needs a driving licence on carshare valid through the end of the trip."
            ),
            remedy="licence",
        )
    if shared.filter(holder=co_driver).exists():
        raise RecipientRefused(
            "not_eligible", _("This person already has a key for this trip."), remedy=""
        )
    return co_driver, start, end


def key_share(
    *,
    key: DigitalKey,
    user: User,
    email: str,
    starts_at: datetime.datetime | None = None,
    ends_at: datetime.datetime | None = None,
    via: str = "web",
) -> DigitalKey:
    """The renter gives a co-driver a key for all or part of the trip; it ends with the trip.
    A refusal is audited like any other attempt."""
    with audited_refusal(car_id=key.car_id, key=key, actor=user, action=AuditAction.SHARE, via=via):
        return _key_share_apply(
            key=key, user=user, email=email, starts_at=starts_at, ends_at=ends_at, via=via
        )


@transaction.atomic(durable=True)
def _key_share_apply(
    *,
    key: DigitalKey,
    user: User,
    email: str,
    starts_at: datetime.datetime | None,
    ends_at: datetime.datetime | None,
    via: str,
) -> DigitalKey:
    vehicle_commands.car_lock(car_id=key.car_id)  # the car before the key, like every path
    key = DigitalKey.objects.select_for_update(of=("self",)).select_related("car").get(pk=key.pk)
    co_driver, start, end = _check_share(
        key=key, user=user, email=email, starts_at=starts_at, ends_at=ends_at
    )
    shared = key_create(
        actor=user,
        reason=_("Shared by %(name)s") % {"name": user.get_short_name()},
        kind=KeyKind.SHARED,
        car=key.car,
        holder=co_driver,
        issued_by=user,
        booking_id=key.booking_id,
        booking_public_id=key.booking_public_id,
        parent=key,
        valid_from=start,
        valid_until=end,
        lock_until=min(key.lock_until, end + lock_grace()),
    )
    if key.status == K.ACTIVE and start <= timezone.now():
        shared = (
            key_move(shared, K.ACTIVE, actor=user, reason=_("Shared during the trip")) or shared
        )
    _announce_granted(shared, to=co_driver, actor=user, action=AuditAction.SHARE, via=via)
    return shared


def key_share_offer(
    *,
    key: DigitalKey,
    user: User,
    email: str,
    starts_at: datetime.datetime | None = None,
    ends_at: datetime.datetime | None = None,
    via: str = "web",
) -> DigitalKey | None:
    """Share the key as key_share() does, for the pages and the API: the shared key, or None
    when the person cannot receive it; then the address is emailed what they need (sign up,
    verify, a licence), so the sharer gets the same answer either way. Refusals about the
    sharer's own input (the window, a full trip, their own email) are raised as usual."""
    try:
        return key_share(
            key=key, user=user, email=email, starts_at=starts_at, ends_at=ends_at, via=via
        )
    except RecipientRefused as refusal:  # already audited by key_share()
        if refusal.remedy:
            # Queued like the key's own email, so the answer takes as long either way.
            tasks_email.send_share_invitation.delay_on_commit(
                key_id=key.pk, email=email.strip(), remedy=refusal.remedy
            )
        return None


def share_answer(*, email: str) -> str:
    """What the sharer is told after key_share_offer(), whatever became of it: the page and the
    API say the same words for an unknown address, one that cannot receive the key, and a key
    given (which the sharer then sees in their list)."""
    return _(
        "If %(email)s has a carshare account with a verified email and a driving licence valid "
        "through the trip, they have the key now (it is in your list of co-drivers) and we've "
        "emailed them. If not, we've emailed them what they need to do first."
    ) % {"email": email.strip()}


def _announce_granted(key: DigitalKey, *, to: User, actor: User, action: str, via: str) -> None:
    """A key given to someone (shared, or a service key): in the audit log, and in their inbox."""
    audit_record(
        car_id=key.car_id,
        key=key,
        actor=actor,
        action=action,
        via=via,
        detail=f"to {to.email}",
    )
    tasks_email.send_key_email.delay_on_commit(key_id=key.pk, kind="issued")


# --- Service keys -----------------------------------------------------------------------------


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
    if technician is not None and technician.pk == car.owner_id:
        raise KeyRefused("not_eligible", _("You don't need a key to your own car."))
    if technician is None or not _has_verified_email(technician):
        # One answer for "no account" and "not verified yet": anyone can list a car, so a
        # different one would tell them which addresses have a carshare account.
        raise KeyRefused(
            "not_eligible",
            _(
                "The technician needs a carshare account with a verified email address: ask "
                "them to sign up or to verify their email, then try again."
            ),
        )
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
    """The owner gives a technician a key for a window, which no trip may overlap. A refusal
    is audited like any other attempt."""
    with audited_refusal(
        car_id=car.pk, key=None, actor=user, action=AuditAction.ISSUE_SERVICE, via=via
    ):
        return _service_key_issue(
            car=car,
            user=user,
            email=email,
            starts_at=starts_at,
            ends_at=ends_at,
            note=note,
            via=via,
        )


def _service_key_issue(
    *,
    car: Car,
    user: User,
    email: str,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
    note: str,
    via: str,
) -> DigitalKey:
    technician = _check_service_key(
        car=car, user=user, email=email, starts_at=starts_at, ends_at=ends_at
    )
    now = timezone.now()
    # Unanswered requests past their respond_by stopped holding the car, but the constraint
    # counts them until they are gone: release them first (their booking's sweep records the
    # expiry and tells the renter).
    occupancy.occupancy_release_expired(car_id=car.pk, now=now)
    window = DateTimeTZRange(starts_at, ends_at)
    if not occupancy.car_is_free(car_id=car.pk, period=window, now=now):
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
        # refused the window's occupancy, and the whole transaction rolled back.
        if occupancy.is_occupancy_conflict(error):
            raise KeyRefused("not_available", NOT_AVAILABLE) from error
        raise
    except OperationalError as error:
        # Two inserters of overlapping occupancies can each wait for the other's uncommitted row;
        # PostgreSQL aborts one of them. The window is contested: say so.
        if db.is_deadlock(error):
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
    # The window takes the car first; the key keeps it until revoked.
    window = occupancy.occupancy_create(
        car_id=car.pk, kind=OccupancyKind.SERVICE, period=DateTimeTZRange(starts_at, ends_at)
    )
    key = key_create(
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
        occupancy=window,
    )
    if ends_at - timezone.now() <= KEY_CLOCK_HORIZON:  # as the key clock's ETA tasks
        tasks.end_service_window.apply_async_on_commit(kwargs={"key_id": key.pk}, eta=ends_at)
    _announce_granted(key, to=technician, actor=user, action=AuditAction.ISSUE_SERVICE, via=via)
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
    with audited_refusal(
        car_id=key.car_id, key=key, actor=user, action=AuditAction.REVOKE, via=via
    ):
        if not _may_revoke(key, user):
            raise KeyRefused("not_allowed", _("You can't revoke this key."))
    return _key_revoke_apply(key=key, user=user, reason=reason, via=via)


@transaction.atomic(durable=True)
def _key_revoke_apply(*, key: DigitalKey, user: User, reason: str, via: str) -> DigitalKey:
    # The car before the key (the end lock below asks the car for a command), like every path.
    vehicle_commands.car_lock(car_id=key.car_id)
    was_active = key.status == K.ACTIVE
    reason = reason or _("Revoked by %(name)s") % {"name": user.get_short_name()}
    revoked = key_move(
        key, K.REVOKED, actor=user, reason=reason, revoked_by=user, revoke_reason=reason[:200]
    )
    if revoked is None:
        raise KeyRefused("key_not_active", _("This key has already ended."))
    for shared in DigitalKey.objects.filter(parent=key, status__in=LIVE_STATUSES).order_by("pk"):
        key_move(
            shared,
            K.REVOKED,
            actor=user,
            reason=reason,
            revoked_by=user,
            revoke_reason=reason[:200],
        )
    if key.kind == KeyKind.SERVICE:
        # The rest of the window is free for trips again.
        occupancy.occupancy_release(occupancy_id=key.occupancy_id)
        revoked.occupancy_id = None  # as the release left the row
        if was_active:
            endlocks.end_lock_begin(key=revoked, reason="service_end")
    elif key.kind == KeyKind.TRIP and was_active:
        endlocks.end_lock_begin(key=revoked, reason="trip_end")
    audit_record(car_id=key.car_id, key=key, actor=user, action=AuditAction.REVOKE, via=via)
    if key.kind != KeyKind.TRIP and user.pk != key.holder_id:
        tasks_email.send_key_email.delay_on_commit(key_id=key.pk, kind="revoked")
    return revoked
