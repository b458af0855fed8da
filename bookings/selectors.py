"""Reads of bookings: the access doors, the lists for renters and owners, availability (the
holds that matter now) and the owner's month calendar."""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import BooleanField, Expression, F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from bookings.models import HOLDING_STATUSES, Booking, BookingStatus, CarBlock, Hold
from carshare.db import one_or_404
from vehicles.models import Car

B = BookingStatus
REMINDER_BEFORE = datetime.timedelta(hours=1)
UPCOMING_STATUSES = [B.REQUESTED, B.CONFIRMED]
PAST_STATUSES = [B.COMPLETED, B.DECLINED, B.EXPIRED, B.CANCELLED]
MAX_BUFFER = datetime.timedelta(minutes=24 * 60)  # Car.buffer_minutes' validator


def _bookings() -> QuerySet[Booking]:
    return Booking.objects.select_related("car", "car__owner", "renter")


def _one(bookings: QuerySet[Booking], public_id: UUID | str) -> Booking:
    return one_or_404(bookings, public_id=public_id, message="No such booking.")


def booking_for_participant(*, user: User, public_id: UUID | str) -> Booking:
    """The booking for its renter, its car's owner or staff; anyone else gets 404."""
    if not user.is_authenticated:
        raise Http404("No such booking.")
    bookings = _bookings()
    if not user.is_staff:
        bookings = bookings.filter(Q(renter=user) | Q(car__owner=user))
    return _one(bookings, public_id)


def booking_for_owner(*, user: User, public_id: UUID | str) -> Booking:
    """The booking for its car's owner only (approve, decline); anyone else gets 404."""
    if not user.is_authenticated:
        raise Http404("No such booking.")
    return _one(_bookings().filter(car__owner=user), public_id)


def bookings_of_renter(*, user: User) -> dict[str, QuerySet[Booking]]:
    """'My trips': upcoming (soonest first), active, past (latest first)."""
    mine = _bookings().filter(renter=user)
    return {
        "upcoming": mine.filter(status__in=UPCOMING_STATUSES).order_by("period", "pk"),
        "active": mine.filter(status=B.ACTIVE).order_by("period", "pk"),
        "past": mine.filter(status__in=PAST_STATUSES).order_by("-period", "-pk"),
    }


def bookings_of_owner(*, user: User, status: str | None = None) -> QuerySet[Booking]:
    """Requests and bookings of the user's cars, soonest first; optionally of one status."""
    bookings = _bookings().filter(car__owner=user)
    if status:
        bookings = bookings.filter(status=status)
    return bookings.order_by("period", "pk")


def bookings_of_user(*, user: User) -> QuerySet[Booking]:
    """Everything the user takes part in, as renter or as owner (the API's list)."""
    return _bookings().filter(Q(renter=user) | Q(car__owner=user)).order_by("-period", "-pk")


# --- Availability ----------------------------------------------------------------------------


def holds_that_matter(
    *, car_id: int, period: DateTimeTZRange, now: datetime.datetime
) -> QuerySet[Hold]:
    """The car's holds overlapping `period`, leaving out requests past their respond_by: those
    stopped holding the moment they became overdue, even if the sweep has not run yet."""
    return (
        Hold.objects.filter(car_id=car_id, period__overlap=period)
        .exclude(booking__status=B.REQUESTED, booking__respond_by__lte=now)
        .order_by("period")
    )


class _CarFreeBetween(Expression):
    """`NOT EXISTS (a hold that counts over the trip plus this car's buffer)` for the car of
    the outer query, written as SQL: the same test as the ORM would build from Exists(),
    OuterRef() and Func() (and the same plan), without building and compiling that tree of
    expressions twice per search, which cost about as much as rendering the results
    (bench/README.md). The car's columns are resolved through the ORM, so the outer query's
    alias is always the right one."""

    conditional = True
    output_field = BooleanField()

    def __init__(
        self, start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
    ) -> None:
        super().__init__()
        self.start, self.end, self.now = start, end, now
        self.car: Any = F("pk")
        self.buffer_minutes: Any = F("buffer_minutes")

    def get_source_expressions(self) -> list[Any]:
        return [self.car, self.buffer_minutes]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.car, self.buffer_minutes = exprs

    # Django's compilers pass params as lists; the stubs declare a tuple.
    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        car_sql, car_params = compiler.compile(self.car)
        buffer_sql, buffer_params = compiler.compile(self.buffer_minutes)
        # The first overlap uses the longest buffer a car can have, which depends on nothing
        # outside: it lets PostgreSQL find the few holds near the dates once through the GiST
        # index and anti-join them by car (hash), instead of probing every car's holds (10,000
        # cars: 60 ms). Overdue requests are a NOT EXISTS rather than a join: there are few of
        # them (the sweep expires them), found through the (status, respond_by) index, so no
        # booking is read for the holds that do count.
        # Table names come from the models and column SQL from the compiler; values are params.
        sql = (
            f"NOT EXISTS (SELECT 1 FROM {_HOLD} free_hold"  # noqa: S608
            f" WHERE free_hold.car_id = {car_sql}"
            " AND free_hold.period && %s::tstzrange"
            " AND free_hold.period && tstzrange(%s::timestamptz,"
            f" %s::timestamptz + make_interval(mins => {buffer_sql}))"
            f" AND NOT EXISTS (SELECT 1 FROM {_BOOKING} free_booking"
            " WHERE free_booking.id = free_hold.booking_id"
            " AND free_booking.status = %s AND free_booking.respond_by <= %s::timestamptz))"
        )
        near = DateTimeTZRange(self.start, self.end + MAX_BUFFER)
        params = [*car_params, near, self.start, self.end, *buffer_params]
        return sql, [*params, B.REQUESTED.value, self.now]


_HOLD = Hold._meta.db_table
_BOOKING = Booking._meta.db_table


def cars_free_between(
    cars: QuerySet[Car], start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> QuerySet[Car]:
    """`cars` without those a trip over [start, end) would collide with: registered as car
    search's availability filter (see BookingsConfig.ready). A booking's hold would cover the
    trip plus the car's buffer, as booking_request makes it, so that is what must be free;
    requests past their respond_by do not count (as in holds_that_matter). Part of the cars'
    own query (NOT EXISTS, see _CarFreeBetween), so no query per car."""
    return cars.filter(_CarFreeBetween(start, end, now))


def _hold_kind(hold: Hold) -> str:
    if hold.block_id is not None:
        return "block"
    if hold.service_key_id is not None:
        return "service"
    return (
        "request" if hold.booking is not None and hold.booking.status == B.REQUESTED else "booking"
    )


def busy_intervals(
    *, car: Car, start: datetime.datetime, end: datetime.datetime
) -> list[tuple[datetime.datetime, datetime.datetime, str]]:
    """(start, end, kind) for each stretch of [start, end) the car is taken, soonest first;
    kind is "booking", "request", "block" or "service". A booking's stretch includes the
    owner's buffer after it, and a new trip's own buffer must also fit before the next one."""
    holds = holds_that_matter(
        car_id=car.pk, period=DateTimeTZRange(start, end), now=timezone.now()
    ).select_related("booking")
    return [(hold.period.lower, hold.period.upper, _hold_kind(hold)) for hold in holds]


# --- What the trip clock and the sweeps find due --------------------------------------------


def bookings_due_start(*, now: datetime.datetime) -> list[int]:
    return list(
        Booking.objects.filter(status=B.CONFIRMED, period__startswith__lte=now).values_list(
            "pk", flat=True
        )
    )


def bookings_starting_soon(*, now: datetime.datetime, within: datetime.timedelta) -> list[int]:
    """Confirmed trips starting within `within` from now whose start is not scheduled yet."""
    return list(
        Booking.objects.filter(
            status=B.CONFIRMED,
            period__startswith__gt=now,
            period__startswith__lte=now + within,
            start_scheduled_at__isnull=True,
        ).values_list("pk", flat=True)
    )


def bookings_due_end(*, now: datetime.datetime) -> list[int]:
    return list(
        Booking.objects.filter(status=B.ACTIVE, period__endswith__lte=now).values_list(
            "pk", flat=True
        )
    )


def bookings_due_reminder(*, now: datetime.datetime) -> list[int]:
    """Confirmed trips starting within the hour whose renter has not been reminded."""
    return list(
        Booking.objects.filter(
            status=B.CONFIRMED,
            reminder_sent_at__isnull=True,
            period__startswith__gt=now,
            period__startswith__lte=now + REMINDER_BEFORE,
        ).values_list("pk", flat=True)
    )


# --- The owner's month calendar -------------------------------------------------------------


@dataclass
class CalendarEntry:
    kind: str  # "booking" or "block"
    starts_at: datetime.datetime  # in the car's time zone
    ends_at: datetime.datetime
    obj: Booking | CarBlock
    status: str = ""  # a booking's status; "" for blocks


@dataclass
class CalendarDay:
    date: datetime.date
    in_month: bool
    entries: list[CalendarEntry] = field(default_factory=list)


@dataclass
class CalendarMonth:
    car: Car
    year: int
    month: int
    time_zone: str
    weeks: list[list[CalendarDay]]  # Monday first, whole weeks around the month
    bookings: list[Booking]
    blocks: list[CarBlock]
    previous: tuple[int, int]
    next: tuple[int, int]

    @property
    def first_day(self) -> datetime.date:
        return datetime.date(self.year, self.month, 1)


def calendar_month(*, car: Car, year: int, month: int) -> CalendarMonth:
    """The car's bookings (holding or completed) and blocks touching a month of its local time,
    laid out in weeks; two queries whatever the number of entries."""
    zone = ZoneInfo(car.time_zone)
    weeks_of_dates = calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)
    first_shown, last_shown = weeks_of_dates[0][0], weeks_of_dates[-1][-1]
    window = DateTimeTZRange(
        datetime.datetime.combine(first_shown, datetime.time(), zone),
        datetime.datetime.combine(last_shown + datetime.timedelta(days=1), datetime.time(), zone),
    )
    bookings = list(
        Booking.objects.select_related("renter")
        .filter(car=car, period__overlap=window, status__in=[*HOLDING_STATUSES, B.COMPLETED])
        .order_by("period")
    )
    blocks = list(CarBlock.objects.filter(car=car, period__overlap=window).order_by("period"))
    entries = [
        CalendarEntry(
            "booking", b.starts_at.astimezone(zone), b.ends_at.astimezone(zone), b, b.status
        )
        for b in bookings
    ] + [
        CalendarEntry("block", k.period.lower.astimezone(zone), k.period.upper.astimezone(zone), k)
        for k in blocks
    ]
    weeks: list[list[CalendarDay]] = []
    for week in weeks_of_dates:
        days = []
        for day in week:
            day_start = datetime.datetime.combine(day, datetime.time(), zone)
            day_end = datetime.datetime.combine(
                day + datetime.timedelta(days=1), datetime.time(), zone
            )
            on_day = [e for e in entries if e.starts_at < day_end and e.ends_at > day_start]
            days.append(CalendarDay(date=day, in_month=day.month == month, entries=on_day))
        weeks.append(days)
    previous = (year - 1, 12) if month == 1 else (year, month - 1)
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return CalendarMonth(
        car=car,
        year=year,
        month=month,
        time_zone=car.time_zone,
        weeks=weeks,
        bookings=bookings,
        blocks=blocks,
        previous=previous,
        next=following,
    )


def calendar_feed_entries(*, car: Car) -> list[dict[str, Any]]:
    """Bookings and blocks of a car from a month ago on, for its iCal feed."""
    since = timezone.now() - datetime.timedelta(days=31)
    entries: list[dict[str, Any]] = [
        {
            "uid": f"booking-{b.public_id}",
            "starts_at": b.starts_at,
            "ends_at": b.ends_at,
            "kind": "booking",
            "status": b.status,
            "obj": b,
        }
        for b in Booking.objects.filter(
            car=car, status__in=[*HOLDING_STATUSES, B.COMPLETED], period__endswith__gte=since
        ).order_by("period")
    ]
    entries += [
        {
            "uid": f"block-{k.public_id}",
            "starts_at": k.period.lower,
            "ends_at": k.period.upper,
            "kind": "block",
            "status": k.reason,
            "obj": k,
        }
        for k in CarBlock.objects.filter(car=car, period__endswith__gte=since).order_by("period")
    ]
    return sorted(entries, key=lambda e: e["starts_at"])
