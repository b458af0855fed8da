"""A car's occupancy: the stretches of time it is taken (trips, owner blocks, service windows),
one Occupancy row each, under the exclusion constraint that refuses two overlapping ones.

The apps that take a car (bookings for trips and blocks, keys for service windows) sit above
this one: they create an occupancy inside their own transaction, keep its id on their row, and
release it when their thing stops holding. This module knows nothing of them, so availability
and the search ask it directly.

An unanswered request holds only until its `expires_at` (the booking's respond_by): from then
on every read here ignores it. The constraint still counts it until the row is gone, so an
inserter first releases the car's expired rows (bookings does so by expiring the requests,
which also tells the renter; keys calls occupancy_release_expired).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import BooleanField, Expression, F, Q, QuerySet
from django.utils import timezone

from carshare import db
from vehicles.models import OCCUPANCY_CONSTRAINT, Car, Occupancy, OccupancyKind

O = OccupancyKind  # noqa: E741 (the house abbreviation for a choices class)
MAX_BUFFER = datetime.timedelta(minutes=24 * 60)  # Car.buffer_minutes' validator


# --- Writes: always inside the taking app's transaction --------------------------------------


def _require_transaction(name: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        # The occupancy and the row that owns it commit together, or neither does.
        raise RuntimeError(f"{name}() runs inside the calling service's transaction")


def occupancy_create(
    *,
    car_id: int,
    kind: str,
    period: DateTimeTZRange,
    expires_at: datetime.datetime | None = None,
) -> Occupancy:
    """Take the car for `period`; IntegrityError (is_occupancy_conflict) when that overlaps
    another occupancy of the car. `expires_at`: when an unanswered request stops holding."""
    _require_transaction("occupancy_create")
    return Occupancy.objects.create(car_id=car_id, kind=kind, period=period, expires_at=expires_at)


def occupancy_keep(*, occupancy_id: int) -> None:
    """The request was answered: the occupancy holds until it is released."""
    _require_transaction("occupancy_keep")
    Occupancy.objects.filter(pk=occupancy_id).update(expires_at=None)


def occupancy_shrink(*, occupancy_id: int, period: DateTimeTZRange) -> None:
    """Narrow the occupancy to `period`, or release it if that is empty. Only ever narrower:
    a shrunk occupancy can never collide with its neighbours."""
    _require_transaction("occupancy_shrink")
    if period.upper <= period.lower:
        Occupancy.objects.filter(pk=occupancy_id).delete()
    else:
        Occupancy.objects.filter(pk=occupancy_id).update(period=period)


def occupancy_release(*, occupancy_id: int | None) -> None:
    """Free the car: the thing that held it ended. Releasing nothing (None) is fine."""
    if occupancy_id is not None:
        Occupancy.objects.filter(pk=occupancy_id).delete()


def occupancy_release_expired(*, car_id: int, now: datetime.datetime) -> None:
    """Drop the car's occupancies past their expiry: they stopped holding already, but the
    exclusion constraint counts rows, not expiries. Their owners keep their own state (a
    booking's request is marked expired by its sweep)."""
    Occupancy.objects.filter(car_id=car_id, expires_at__lte=now).delete()


def is_occupancy_conflict(error: IntegrityError) -> bool:
    """Whether the exclusion constraint refused an overlap (by its name, not its message)."""
    return db.violates(error, OCCUPANCY_CONSTRAINT)


# --- Reads ------------------------------------------------------------------------------------


def occupancies_that_hold(
    *, car_id: int, period: DateTimeTZRange, now: datetime.datetime
) -> QuerySet[Occupancy]:
    """The car's occupancies overlapping `period` that hold at `now`, soonest first: those past
    their expiry stopped holding the moment they expired, even if nobody released them yet."""
    return (
        Occupancy.objects.filter(car_id=car_id, period__overlap=period)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("period")
    )


def car_is_free(*, car_id: int, period: DateTimeTZRange, now: datetime.datetime) -> bool:
    """The friendly early answer; the exclusion constraint still decides under a race."""
    return not occupancies_that_hold(car_id=car_id, period=period, now=now).exists()


def busy_intervals(
    *, car: Car, start: datetime.datetime, end: datetime.datetime
) -> list[tuple[datetime.datetime, datetime.datetime, str]]:
    """(start, end, kind) for each stretch of [start, end) the car is taken, soonest first;
    kind is "booking", "request" (a trip still waiting for its answer), "block" or "service".
    A trip's stretch includes the owner's buffer after it, and a new trip's own buffer must
    also fit before the next one."""
    held = occupancies_that_hold(
        car_id=car.pk, period=DateTimeTZRange(start, end), now=timezone.now()
    )
    return [(o.period.lower, o.period.upper, _busy_kind(o)) for o in held]


def _busy_kind(occupancy: Occupancy) -> str:
    if occupancy.kind == O.TRIP:
        return "request" if occupancy.expires_at is not None else "booking"
    return "block" if occupancy.kind == O.OWNER_BLOCK else "service"


class _CarFreeBetween(Expression):
    """`NOT EXISTS (an occupancy that holds over the trip plus this car's buffer)` for the car
    of the outer query, written as SQL: the same test as the ORM would build from Exists(),
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
        # outside: it lets PostgreSQL find the few occupancies near the dates once through the
        # GiST index and anti-join them by car (hash), instead of probing every car's
        # occupancies (10,000 cars: 60 ms). The expiry is read from the same index entry
        # (INCLUDE), so no other table is read for the occupancies that do hold.
        # Table names come from the models and column SQL from the compiler; values are params.
        sql = (
            f"NOT EXISTS (SELECT 1 FROM {_OCCUPANCY} free_occupancy"  # noqa: S608
            f" WHERE free_occupancy.car_id = {car_sql}"
            " AND free_occupancy.period && %s::tstzrange"
            " AND free_occupancy.period && tstzrange(%s::timestamptz,"
            f" %s::timestamptz + make_interval(mins => {buffer_sql}))"
            " AND (free_occupancy.expires_at IS NULL"
            " OR free_occupancy.expires_at > %s::timestamptz))"
        )
        near = DateTimeTZRange(self.start, self.end + MAX_BUFFER)
        params = [*car_params, near, self.start, self.end, *buffer_params]
        return sql, [*params, self.now]


_OCCUPANCY = Occupancy._meta.db_table


def cars_free_between(
    cars: QuerySet[Car], start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> QuerySet[Car]:
    """`cars` without those a trip over [start, end) would collide with: car search's
    availability filter. A trip's occupancy covers the trip plus the car's buffer (as
    bookings makes it), so that is what must be free; expired occupancies do not count (as in
    occupancies_that_hold). Part of the cars' own query (NOT EXISTS, see _CarFreeBetween), so
    no query per car."""
    return cars.filter(_CarFreeBetween(start, end, now))
