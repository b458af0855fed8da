"""Every write to bookings and owner blocks.

A booking goes requested → confirmed → active → completed, leaving early as declined, expired
or cancelled (bookings.models.ALLOWED_MOVES). Instant-book cars skip the wait: the request is
recorded (event ∅ → requested, actor the renter) and carshare confirms it in the same
transaction (event requested → confirmed, actor None = the system, reason "instant book").

_move() is the one place a status changes; each change leaves a BookingEvent behind, and a
booking that stops holding the car releases its occupancy (vehicles.occupancy) in the same
transaction, which frees the car at once; a completed trip (on time or ended early) keeps only
the owner's buffer after its actual end. A request's occupancy expires at its respond_by, and
confirming it makes it hold until released. The occupancy's exclusion constraint is the
guarantee against double booking; the checks here only give a friendly message first, and a
constraint violation becomes BookingError("not_available").

The trip clock (confirmed → active at the start, active → completed at the end) is driven by the
database: booking_start / booking_complete move only what is due, so a short-horizon ETA task
and the run_trip_clock sweep may both call them. The _on_* hooks hand the keys app its part
(issue, open, end, revoke the trip's keys) inside the same transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from allauth.account.models import EmailAddress
from django.db import IntegrityError, OperationalError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from bookings import pricing, tasks
from bookings.models import (
    ALLOWED_MOVES,
    HOLDING_STATUSES,
    SYSTEM_MOVES,
    BlockReason,
    Booking,
    BookingEvent,
    BookingStatus,
    CancelledBy,
    CarBlock,
)
from bookings.pricing import Quote
from carshare import db
from carshare.errors import DomainError
from keys import selectors as key_selectors
from keys import services as key_services
from vehicles import occupancy
from vehicles import selectors as vehicle_selectors
from vehicles.models import Car, OccupancyKind

__all__ = [
    "BookingError",
    "Quote",
    "block_create",
    "block_delete",
    "booking_cancel",
    "booking_complete",
    "booking_confirm",
    "booking_decline",
    "booking_end",
    "booking_quote",
    "booking_request",
    "booking_start",
    "bookings_expire_unanswered",
    "respond_by_for",
]

B = BookingStatus
RESPONSE_WINDOW = datetime.timedelta(hours=12)
# Trip-clock moves due within this horizon get an ETA task for precision; later ones are left
# to the run_trip_clock sweep, since Redis may redeliver far-future ETAs (visibility timeout).
TRIP_CLOCK_HORIZON = datetime.timedelta(hours=1)
T = TypeVar("T")

ERROR_MESSAGES: dict[str, Promise] = {
    "not_available": gettext_lazy("This car is already booked for part of that time."),
    "too_soon": gettext_lazy("This trip starts too soon."),
    "too_short": gettext_lazy("This trip is too short."),
    "too_long": gettext_lazy("This trip is too long."),
    "not_connected": gettext_lazy(
        "This car is not connected to carshare, so it could not be opened for your trip."
    ),
    "not_lockable": gettext_lazy(
        "This car's make can't be locked and unlocked remotely, so it could not be opened "
        "for your trip."
    ),
    "own_car": gettext_lazy("You can't book your own car."),
    "no_licence": gettext_lazy("Add a driving licence valid through the end of the trip."),
    "email_unverified": gettext_lazy("Please verify your email address before booking."),
    "not_listed": gettext_lazy("This car is not listed for rent."),
    "invalid_period": gettext_lazy("The trip must end after it starts."),
    "not_allowed": gettext_lazy("That is not possible for this booking now."),
}

# vehicles.selectors.NotPublic codes → ours (a missing, expired or partial connection is all
# "not connected" to a renter).
_REFUSAL_OF_NOT_PUBLIC = {"unlisted": "not_listed", "make_cannot_lock": "not_lockable"}


# Codes for a state of the world rather than the request: trying again later (or another car,
# or other times) may work, so the API answers 409. Every other code is a rule the input broke.
CONFLICT_CODES = {"not_available", "not_allowed"}


class BookingError(DomainError):
    """Raised when the rules refuse an action; str(error) can be shown to the user as is and
    .code (one of ERROR_MESSAGES) tells the API which error it is."""

    def __init__(self, code: str, message: str | Promise | None = None) -> None:
        super().__init__(code, message if message is not None else ERROR_MESSAGES[code])

    @classmethod
    def status_for(cls, code: str) -> int:
        return 409 if code in CONFLICT_CODES else 400


# --- Rules ---------------------------------------------------------------------------------


def _check_period(starts_at: datetime.datetime, ends_at: datetime.datetime) -> None:
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        # Views convert the car's local time to an aware datetime; naive here is a bug.
        raise ValueError("Booking times must be timezone-aware.")
    if ends_at <= starts_at:
        raise BookingError("invalid_period")


def _hours(n: int) -> str:
    return _("%(n)s hour") % {"n": n} if n == 1 else _("%(n)s hours") % {"n": n}


def _check_request_rules(*, renter: User, car: Car, ends_at: datetime.datetime) -> None:
    """What the car and the renter must be for a booking, cheapest and most fundamental first;
    the trip's times are _check_trip_times' part."""
    # The one rule of what is public (vehicles.models.CarQuerySet.public), read afresh: the
    # page that sent this request may have loaded the car before its connection expired.
    if (problem := vehicle_selectors.car_not_public_reason(car, fresh=True)) is not None:
        raise BookingError(_REFUSAL_OF_NOT_PUBLIC.get(problem.code, "not_connected"))
    if car.owner_id == renter.pk:
        raise BookingError("own_car")
    if not EmailAddress.objects.filter(
        user=renter, email__iexact=renter.email, verified=True
    ).exists():
        raise BookingError("email_unverified")
    last_day = ends_at.astimezone(ZoneInfo(car.time_zone)).date()
    if not renter.has_valid_licence(through=last_day):
        raise BookingError(
            "no_licence",
            _(
                "You need a driving licence valid through %(day)s, the last day of the trip: "
                "add or update it in your profile."
            )
            % {"day": last_day.isoformat()},
        )


def _check_trip_times(
    *, car: Car, starts_at: datetime.datetime, ends_at: datetime.datetime, now: datetime.datetime
) -> DateTimeTZRange:
    """The rules a trip's times must meet on this car (not in the past, the car's notice, its
    shortest and longest trip, free with the owner's buffer after it), each with its own
    message. The live quote and booking_request both ask these two steps, so the quote never
    offers a trip that booking then refuses. Reads only; returns the hold the trip would take."""
    _check_trip_rules(car=car, starts_at=starts_at, ends_at=ends_at, now=now)
    return _check_trip_free(car=car, starts_at=starts_at, ends_at=ends_at, now=now)


def _check_trip_rules(
    *, car: Car, starts_at: datetime.datetime, ends_at: datetime.datetime, now: datetime.datetime
) -> None:
    """The first step of _check_trip_times: the times themselves, whatever else holds the car."""
    _check_period(starts_at, ends_at)
    if starts_at < now:
        raise BookingError("too_soon", _("The trip can't start in the past."))
    if starts_at < now + datetime.timedelta(hours=car.min_notice_hours):
        raise BookingError(
            "too_soon",
            _("This car needs %(notice)s notice: start the trip later.")
            % {"notice": _hours(car.min_notice_hours)},
        )
    duration = ends_at - starts_at
    if duration < datetime.timedelta(hours=car.min_duration_hours):
        raise BookingError(
            "too_short",
            _("Trips with this car last at least %(minimum)s.")
            % {"minimum": _hours(car.min_duration_hours)},
        )
    if duration > datetime.timedelta(days=car.max_duration_days):
        raise BookingError(
            "too_long",
            _("Trips with this car last at most %(days)s days.") % {"days": car.max_duration_days},
        )


def _check_trip_free(
    *, car: Car, starts_at: datetime.datetime, ends_at: datetime.datetime, now: datetime.datetime
) -> DateTimeTZRange:
    """The second step: the car is free for the trip and the owner's buffer after it."""
    hold_period = DateTimeTZRange(
        starts_at, ends_at + datetime.timedelta(minutes=car.buffer_minutes)
    )
    _assert_period_free(car=car, period=hold_period, now=now)
    return hold_period


def _require_car_owner(*, car: Car, user: User) -> None:
    if car.owner_id != user.pk and not user.is_staff:
        raise BookingError("not_allowed", _("Only the car's owner can do that."))


def _assert_period_free(*, car: Car, period: DateTimeTZRange, now: datetime.datetime) -> None:
    """The friendly early answer; the exclusion constraint still decides under a race."""
    if not occupancy.car_is_free(car_id=car.pk, period=period, now=now):
        raise BookingError("not_available")


def respond_by_for(
    *, requested_at: datetime.datetime, starts_at: datetime.datetime
) -> datetime.datetime:
    """The owner answers within 12 h, or half the time left to the start if that is shorter,
    so the renter always has time to look elsewhere."""
    return min(requested_at + RESPONSE_WINDOW, requested_at + (starts_at - requested_at) / 2)


# --- The one place a status changes --------------------------------------------------------

_STAMPS: dict[str, str] = {
    B.CONFIRMED: "confirmed_at",
    B.ACTIVE: "started_at",
    B.COMPLETED: "ended_at",
}


def _move(
    booking: Booking, to: str, *, actor: User | None, reason: str = "", system: bool = False
) -> Booking:
    if not transaction.get_connection().in_atomic_block:  # a row lock ends with its transaction
        raise RuntimeError("_move() needs the calling service's transaction")
    # of=("self",): lock the booking only, never the car row other requests read.
    current = (
        Booking.objects.select_for_update(of=("self",))
        .select_related("car", "renter", "car__owner")
        .get(pk=booking.pk)
    )
    now = timezone.now()
    allowed = ALLOWED_MOVES.get(current.status, set())
    if system:
        allowed = allowed | SYSTEM_MOVES.get(current.status, set())
    if to not in allowed:
        # Usually a double click, or the sweep or the other party got there first.
        raise BookingError(
            "not_allowed", _("Not possible now: %(s)s.") % {"s": current.get_status_display()}
        )
    if (
        current.status == B.REQUESTED
        and to != B.EXPIRED
        and current.respond_by is not None
        and current.respond_by <= now
    ):
        # Overdue requests stopped holding the car already (availability ignores them); the
        # sweep records the expiry. Nobody may act on them in between.
        raise BookingError(
            "not_allowed", _("This request has expired: the owner did not answer in time.")
        )
    BookingEvent.objects.create(
        booking=current, actor=actor, old_status=current.status, new_status=to, reason=reason
    )
    current.status = to
    fields = ["status"]
    if stamp := _STAMPS.get(to):
        setattr(current, stamp, now)
        fields.append(stamp)
    held = current.occupancy_id
    if to == B.COMPLETED:
        current.occupancy_id = _occupancy_keep_buffer(
            current, actual_end=min(now, current.ends_at), now=now
        )
    elif to not in HOLDING_STATUSES:
        # Declined, expired or cancelled before the trip began: nobody used the car, so there
        # is nothing to hand over or clean, and the car is free at once, in the same
        # transaction as the status change.
        current.occupancy_id = None
    elif to == B.CONFIRMED and held is not None and current.respond_by is not None:
        occupancy.occupancy_keep(occupancy_id=held)  # answered: no longer expires
    if current.occupancy_id != held:
        fields.append("occupancy")
    current.save(update_fields=fields)
    if held is not None and current.occupancy_id is None:
        occupancy.occupancy_release(occupancy_id=held)
    return current


def _occupancy_keep_buffer(
    booking: Booking, *, actual_end: datetime.datetime, now: datetime.datetime
) -> int | None:
    """Shrink a finished trip's occupancy to the owner's buffer after its actual end: the owner
    needs that time for the handover and cleaning however early the renter brought the car
    back. The buffer is the one the trip was booked with (the owner may have changed the car's
    since), so the occupancy only ever shrinks and can never collide with the next trip's.
    Returns the occupancy still held, or None when nothing is left to hold."""
    held = booking.occupancy
    if held is None:
        return None
    buffer_end = actual_end + (held.period.upper - booking.ends_at)
    if buffer_end <= now:  # no buffer, or the trip clock ran after it was over
        return None
    occupancy.occupancy_shrink(occupancy_id=held.pk, period=DateTimeTZRange(actual_end, buffer_end))
    return held.pk


# --- Keys ----------------------------------------------------------------------------------
# Each runs inside the transaction that made the move, so what the keys app writes (key rows,
# the unlock or lock in the vehicle-command outbox) commits or rolls back with the booking.


def _on_booking_confirmed(booking: Booking) -> None:
    key_services.trip_key_issue(
        booking_id=booking.pk,
        booking_public_id=booking.public_id,
        car=booking.car,
        renter=booking.renter,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
    )


def _on_trip_started(booking: Booking) -> None:
    key_services.trip_keys_start(booking_id=booking.pk)


def _on_trip_ended(booking: Booking) -> None:
    key_services.trip_keys_end(booking_id=booking.pk)


def _on_booking_cancelled(booking: Booking, *, actor: User | None, reason: str) -> None:
    key_services.trip_keys_revoke(
        booking_id=booking.pk, actor=actor, reason=reason or _("Booking cancelled")
    )


# --- Quote and request ---------------------------------------------------------------------


def booking_quote(*, car: Car, starts_at: datetime.datetime, ends_at: datetime.datetime) -> Quote:
    """The price of a trip at the car's current rates; no writes (the car page calls it live).
    Raises the BookingError booking_request would for these times (past start, notice, too
    short or long, taken), so a price is only ever given for a trip that can be booked."""
    _check_trip_times(car=car, starts_at=starts_at, ends_at=ends_at, now=timezone.now())
    return pricing.price(car.hourly_price, car.daily_price, starts_at, ends_at)


def booking_request(
    *, renter: User, car: Car, starts_at: datetime.datetime, ends_at: datetime.datetime
) -> Booking:
    """Ask for the car (or book it outright when it is instant-book); BookingError if refused."""
    now = timezone.now()
    _check_period(starts_at, ends_at)
    _check_request_rules(renter=renter, car=car, ends_at=ends_at)
    _check_trip_rules(car=car, starts_at=starts_at, ends_at=ends_at, now=now)
    # Overdue requests no longer hold the car, but the constraint still counts them until they
    # are marked expired: expire this car's now, in their own transaction, before asking if it
    # is free, so they stop blocking this request and are expired whatever happens to it
    # (STYLE §5).
    bookings_expire_unanswered(now=now, car_id=car.pk)
    hold_period = _check_trip_free(car=car, starts_at=starts_at, ends_at=ends_at, now=now)
    quote = pricing.price(car.hourly_price, car.daily_price, starts_at, ends_at)
    return _insert_or_refuse(
        _booking_insert,
        renter=renter,
        car=car,
        period=DateTimeTZRange(starts_at, ends_at),
        hold_period=hold_period,
        quote=quote,
    )


DEADLOCK_RETRIES = 3


def _insert_or_refuse(insert: Callable[..., T], **kwargs: Any) -> T:
    """Run a durable insert that takes the car (an occupancy), turning the exclusion
    constraint's refusal into BookingError("not_available")."""
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return insert(**kwargs)
        except IntegrityError as error:
            # Another request won the race between our check and our insert: the constraint
            # refused this one, and its whole transaction rolled back.
            if occupancy.is_occupancy_conflict(error):
                raise BookingError("not_available") from error
            raise
        except OperationalError as error:
            # Two inserters of overlapping occupancies can each wait for the other's uncommitted
            # row (exclusion constraints check both ways); PostgreSQL then aborts one. Its rival
            # may still roll back, so try again against what is committed by then.
            if not db.is_deadlock(error):
                raise
            if attempt == DEADLOCK_RETRIES - 1:
                raise BookingError("not_available") from error  # still contested: say so
    raise AssertionError("unreachable")  # pragma: no cover


@transaction.atomic(durable=True)
def _booking_insert(
    *,
    renter: User,
    car: Car,
    period: DateTimeTZRange,
    hold_period: DateTimeTZRange,
    quote: Quote,
) -> Booking:
    requested_at = timezone.now()  # auto_now_add stores (almost exactly) this moment too
    respond_by = (
        None
        if car.instant_book
        else respond_by_for(requested_at=requested_at, starts_at=period.lower)
    )
    # The request holds the car until the owner answers, or until respond_by if they don't.
    taken = occupancy.occupancy_create(
        car_id=car.pk, kind=OccupancyKind.TRIP, period=hold_period, expires_at=respond_by
    )
    booking = Booking.objects.create(
        car=car,
        renter=renter,
        period=period,
        status=B.REQUESTED,
        instant=car.instant_book,
        currency=quote.currency,
        hourly_rate=quote.hourly_rate,
        daily_rate=quote.daily_rate,
        price=quote.price,
        respond_by=respond_by,
        occupancy=taken,
    )
    BookingEvent.objects.create(
        booking=booking, actor=renter, old_status="", new_status=B.REQUESTED
    )
    if car.instant_book:
        booking = _move(booking, B.CONFIRMED, actor=None, reason=_("Instant book"))
        _after_confirmation(booking)
    else:
        tasks.send_booking_emails.delay_on_commit(booking_id=booking.pk, kind="requested")
    return booking


def _after_confirmation(booking: Booking) -> None:
    _on_booking_confirmed(booking)
    now = timezone.now()
    if booking.starts_at - now <= TRIP_CLOCK_HORIZON:
        _schedule_start(booking, now=now)
    tasks.send_booking_emails.delay_on_commit(booking_id=booking.pk, kind="confirmed")


# --- The owner answers ---------------------------------------------------------------------


@transaction.atomic(durable=True)
def booking_confirm(*, booking: Booking, user: User) -> Booking:
    """The owner (or an admin) accepts a request."""
    _require_car_owner(car=booking.car, user=user)
    booking = _move(booking, B.CONFIRMED, actor=user)
    _after_confirmation(booking)
    return booking


@transaction.atomic(durable=True)
def booking_decline(*, booking: Booking, user: User, reason: str = "") -> Booking:
    """The owner (or an admin) turns a request down; the car is free again at once."""
    _require_car_owner(car=booking.car, user=user)
    booking = _move(booking, B.DECLINED, actor=user, reason=reason)
    tasks.send_booking_emails.delay_on_commit(booking_id=booking.pk, kind="declined")
    return booking


@transaction.atomic(durable=True)
def bookings_expire_unanswered(*, now: datetime.datetime, car_id: int | None = None) -> int:
    """Expire requests past their respond_by (all cars, or one); returns how many."""
    overdue = Booking.objects.select_for_update(of=("self",), skip_locked=True).filter(
        status=B.REQUESTED, respond_by__lte=now
    )
    # skip_locked: a row locked now is being answered or expired by someone else; waiting for
    # it would only serialise concurrent requests, and the next run sees it again if needed.
    if car_id is not None:
        overdue = overdue.filter(car_id=car_id)
    count = 0
    for booking in overdue:
        _move(booking, B.EXPIRED, actor=None, reason=_("The owner did not answer in time."))
        tasks.send_booking_emails.delay_on_commit(booking_id=booking.pk, kind="expired")
        count += 1
    return count


# --- Cancellation and the end of a trip ----------------------------------------------------


@transaction.atomic(durable=True)
def booking_cancel(*, booking: Booking, user: User, reason: str = "") -> Booking:
    """Cancel for the renter, the owner or an admin; the fee and refund are stored."""
    car = booking.car
    if user.pk == booking.renter_id:
        by = CancelledBy.RENTER
    elif user.pk == car.owner_id:
        by = CancelledBy.OWNER
    elif user.is_staff:
        by = CancelledBy.ADMIN
    else:
        raise BookingError("not_allowed")
    locked = Booking.objects.select_for_update(of=("self",)).get(pk=booking.pk)
    terms = pricing.cancellation_terms(
        trip_price=locked.price,
        starts_at=locked.starts_at,
        now=timezone.now(),
        by_renter=by == CancelledBy.RENTER,
        confirmed=locked.status == B.CONFIRMED,
        active=locked.status == B.ACTIVE,
    )
    booking = _move(locked, B.CANCELLED, actor=user, reason=reason)
    booking.cancelled_by = by
    booking.cancellation_fee = terms.fee
    booking.refund = terms.refund
    booking.save(update_fields=["cancelled_by", "cancellation_fee", "refund"])
    _on_booking_cancelled(booking, actor=user, reason=reason)
    tasks.send_booking_emails.delay_on_commit(booking_id=booking.pk, kind="cancelled")
    return booking


@transaction.atomic(durable=True)
def booking_cancel_unopened(*, booking_id: int) -> Booking | None:
    """The car never opened for this trip (keys.selectors.trips_never_opened): carshare cancels
    it, with no fee and the whole price refunded, since the renter lost the time at a locked car
    through no fault of theirs. The key is revoked and both sides are told. None when the trip
    is no longer active, or the car opened meanwhile (checked again under the booking's lock)."""
    locked = Booking.objects.select_for_update(of=("self",)).filter(pk=booking_id).first()
    if locked is None or locked.status != B.ACTIVE:
        return None
    if booking_id not in key_selectors.trips_never_opened(booking_ids=[booking_id]):
        return None
    reason = _("The car could not be opened at the start: cancelled by carshare, without a fee.")
    booking = _move(locked, B.CANCELLED, actor=None, reason=reason, system=True)
    booking.cancelled_by = CancelledBy.CARSHARE
    booking.cancellation_fee = Decimal("0.00")
    booking.refund = booking.price
    booking.save(update_fields=["cancelled_by", "cancellation_fee", "refund"])
    _on_booking_cancelled(booking, actor=None, reason=reason)
    tasks.send_booking_emails.delay_on_commit(booking_id=booking.pk, kind="cancelled")
    return booking


@transaction.atomic(durable=True)
def booking_end(*, booking: Booking, user: User) -> Booking:
    """The renter (or an admin) ends an active trip early; the price stands, the car is free."""
    if user.pk != booking.renter_id and not user.is_staff:
        raise BookingError("not_allowed")
    booking = _move(booking, B.COMPLETED, actor=user, reason=_("Ended early"))
    _on_trip_ended(booking)
    return booking


# --- The trip clock (system) ---------------------------------------------------------------


def _schedule_start(booking: Booking, *, now: datetime.datetime) -> None:
    """The start is near: an ETA task for the move to active, and the car's unlock staged in the
    outbox for that second, so it does not wait for the move (on_trip_started finds it there).
    Once per trip: the marker is claimed by a conditional update."""
    if not Booking.objects.filter(pk=booking.pk, start_scheduled_at__isnull=True).update(
        start_scheduled_at=now
    ):
        return
    key_services.trip_unlock_stage(booking_id=booking.pk, starts_at=booking.starts_at)
    tasks.start_trip.apply_async_on_commit(
        kwargs={"booking_id": booking.pk}, eta=max(booking.starts_at, now)
    )


@transaction.atomic(durable=True)
def booking_schedule_start(*, booking_id: int) -> bool:
    """For the run_trip_clock sweep: a confirmed trip starting soon gets its ETA task and its
    staged unlock (trips confirmed long ago had neither). Safe to repeat: once per trip."""
    now = timezone.now()
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .filter(
            pk=booking_id,
            status=B.CONFIRMED,
            period__startswith__gt=now,
            start_scheduled_at__isnull=True,
        )
        .first()
    )
    if booking is None:
        return False
    _schedule_start(booking, now=now)
    return True


@transaction.atomic(durable=True)
def booking_start(*, booking_id: int) -> Booking | None:
    """Start a confirmed trip whose start has come; None when there is nothing to do (not yet
    due, already started, cancelled), so the ETA task and the sweep may both call it."""
    now = timezone.now()
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .filter(pk=booking_id, status=B.CONFIRMED, period__startswith__lte=now)
        .first()
    )
    if booking is None:
        return None
    booking = _move(booking, B.ACTIVE, actor=None, reason=_("Trip start"))
    _on_trip_started(booking)
    if booking.ends_at - now <= TRIP_CLOCK_HORIZON:
        tasks.complete_trip.apply_async_on_commit(
            kwargs={"booking_id": booking.pk}, eta=max(booking.ends_at, now)
        )
    return booking


@transaction.atomic(durable=True)
def booking_complete(*, booking_id: int) -> Booking | None:
    """Complete an active trip whose end has come; None when there is nothing to do."""
    now = timezone.now()
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .filter(pk=booking_id, status=B.ACTIVE, period__endswith__lte=now)
        .first()
    )
    if booking is None:
        return None
    booking = _move(booking, B.COMPLETED, actor=None, reason=_("Trip end"))
    _on_trip_ended(booking)
    return booking


# --- Owner blocks --------------------------------------------------------------------------


def block_create(
    *,
    car: Car,
    user: User,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
    reason: str = BlockReason.PERSONAL,
    note: str = "",
) -> CarBlock:
    """The owner keeps the car for [starts_at, ends_at); BookingError("not_available") when
    that overlaps a trip (with its buffer) or another block."""
    _require_car_owner(car=car, user=user)
    _check_period(starts_at, ends_at)
    now = timezone.now()
    if ends_at <= now:
        raise BookingError("invalid_period", _("That time is already over."))
    bookings_expire_unanswered(now=now, car_id=car.pk)  # as in booking_request
    period = DateTimeTZRange(starts_at, ends_at)
    _assert_period_free(car=car, period=period, now=now)
    return _insert_or_refuse(
        _block_insert, car=car, user=user, period=period, reason=reason, note=note
    )


@transaction.atomic(durable=True)
def _block_insert(
    *, car: Car, user: User, period: DateTimeTZRange, reason: str, note: str
) -> CarBlock:
    taken = occupancy.occupancy_create(car_id=car.pk, kind=OccupancyKind.OWNER_BLOCK, period=period)
    return CarBlock.objects.create(
        car=car, period=period, reason=reason, note=note, created_by=user, occupancy=taken
    )


@transaction.atomic(durable=True)
def block_delete(*, block: CarBlock, user: User) -> None:
    """Remove a block; its occupancy goes with it, freeing the time."""
    _require_car_owner(car=block.car, user=user)
    held = block.occupancy_id
    block.delete()
    occupancy.occupancy_release(occupancy_id=held)
