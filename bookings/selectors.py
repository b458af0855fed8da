"""Reads of bookings: the access doors, the lists for renters and owners, and the owner's month
calendar and feed (trips, blocks and service windows). Availability is the car's own:
vehicles.occupancy."""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from bookings.models import HOLDING_STATUSES, Booking, BookingStatus, CarBlock
from carshare.db import one_or_404
from keys.models import DigitalKey
from vehicles.models import Car, Occupancy, OccupancyKind

B = BookingStatus
REMINDER_BEFORE = datetime.timedelta(hours=1)
UPCOMING_STATUSES = [B.REQUESTED, B.CONFIRMED]
PAST_STATUSES = [B.COMPLETED, B.DECLINED, B.EXPIRED, B.CANCELLED]


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
    kind: str  # "booking", "block" or "service"
    starts_at: datetime.datetime  # in the car's time zone
    ends_at: datetime.datetime
    obj: Booking | CarBlock | DigitalKey  # a service window's obj is its service key
    status: str = ""  # a booking's status; "" for blocks and service windows


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
    service_windows: list[DigitalKey]  # service keys whose window holds the car
    previous: tuple[int, int]
    next: tuple[int, int]

    @property
    def first_day(self) -> datetime.date:
        return datetime.date(self.year, self.month, 1)


def _blocks_and_service_windows(
    *,
    car: Car,
    period: DateTimeTZRange | None = None,
    ending_after: datetime.datetime | None = None,
) -> tuple[list[CarBlock], list[DigitalKey]]:
    """The car's blocks and service windows (with their technician), soonest first, in one
    query: both are occupancies, and a service window exists only as long as its occupancy
    (released when the key is revoked)."""
    taken = Occupancy.objects.filter(
        car=car, kind__in=[OccupancyKind.OWNER_BLOCK, OccupancyKind.SERVICE]
    ).select_related("block", "service_key", "service_key__holder")
    if period is not None:
        taken = taken.filter(period__overlap=period)
    if ending_after is not None:
        taken = taken.filter(period__endswith__gte=ending_after)
    blocks: list[CarBlock] = []
    windows: list[DigitalKey] = []
    for occupancy in taken.order_by("period", "pk"):
        if occupancy.kind == OccupancyKind.OWNER_BLOCK and hasattr(occupancy, "block"):
            blocks.append(occupancy.block)
        elif occupancy.kind == OccupancyKind.SERVICE and hasattr(occupancy, "service_key"):
            windows.append(occupancy.service_key)
    return blocks, windows


def calendar_month(*, car: Car, year: int, month: int) -> CalendarMonth:
    """The car's bookings (holding or completed), blocks and service windows touching a month
    of its local time, laid out in weeks; two queries whatever the number of entries."""
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
    blocks, windows = _blocks_and_service_windows(car=car, period=window)
    entries = [
        CalendarEntry(
            "booking", b.starts_at.astimezone(zone), b.ends_at.astimezone(zone), b, b.status
        )
        for b in bookings
    ] + [
        CalendarEntry("block", k.period.lower.astimezone(zone), k.period.upper.astimezone(zone), k)
        for k in blocks
    ]
    entries += [
        CalendarEntry("service", w.valid_from.astimezone(zone), w.valid_until.astimezone(zone), w)
        for w in windows
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
        service_windows=windows,
        previous=previous,
        next=following,
    )


def calendar_feed_entries(*, car: Car) -> list[dict[str, Any]]:
    """Bookings, blocks and service windows of a car from a month ago on, for its iCal feed."""
    since = timezone.now() - datetime.timedelta(days=31)
    blocks, windows = _blocks_and_service_windows(car=car, ending_after=since)
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
        for k in blocks
    ]
    entries += [
        {
            "uid": f"service-{w.public_id}",
            "starts_at": w.valid_from,
            "ends_at": w.valid_until,
            "kind": "service",
            "status": w.status,
            "obj": w,
        }
        for w in windows
    ]
    return sorted(entries, key=lambda e: e["starts_at"])
