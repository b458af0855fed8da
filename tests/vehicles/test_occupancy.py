"""A car's occupancy: the states a stretch of taken time goes through (an unanswered request
expires at its respond_by, an answered one holds until released), the guarantee against
overlaps, and the migration that moved the old holds here with their rows."""

from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from bookings import services
from bookings.models import Booking, BookingStatus, CarBlock
from keys import grants
from keys.models import DigitalKey
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import UserFactory
from vehicles import occupancy
from vehicles.models import Car, Occupancy, OccupancyKind

H = datetime.timedelta(hours=1)


def service_window(car: Car, owner, *, starts_at: datetime.datetime) -> DigitalKey:
    technician = UserFactory(email="tech@example.test", name="Tina Technician")
    return grants.service_key_issue(
        car=car, user=owner, email=technician.email, starts_at=starts_at, ends_at=starts_at + H
    )


@pytest.mark.django_db
def test_a_request_holds_until_its_respond_by_and_an_answer_keeps_it(request_car, renter, owner):
    booking = request_booking(request_car, renter, starts_at=hour_from_now(days=2))
    taken = booking.occupancy
    assert (taken.kind, taken.expires_at) == (OccupancyKind.TRIP, booking.respond_by)
    assert taken.period.upper == booking.ends_at + datetime.timedelta(
        minutes=request_car.buffer_minutes
    )

    services.booking_confirm(booking=booking, user=owner)
    taken.refresh_from_db()
    assert taken.expires_at is None  # answered: holds until the trip releases it


@pytest.mark.django_db
def test_an_expired_request_stops_holding_before_anyone_releases_it(request_car, renter, clock):
    booking = request_booking(request_car, renter, starts_at=hour_from_now(days=2))
    period = DateTimeTZRange(booking.starts_at, booking.ends_at)
    assert not occupancy.car_is_free(car_id=request_car.pk, period=period, now=timezone.now())
    at_respond_by = booking.respond_by
    assert occupancy.car_is_free(car_id=request_car.pk, period=period, now=at_respond_by)
    assert Occupancy.objects.filter(pk=booking.occupancy_id).exists()  # still a row


@pytest.mark.django_db
def test_a_service_window_over_an_expired_request_takes_the_car(request_car, renter, owner, clock):
    booking = request_booking(request_car, renter, starts_at=hour_from_now(days=2))
    clock.move_to(booking.respond_by, tick=False)
    window = service_window(request_car, owner, starts_at=booking.starts_at)
    assert window.occupancy.kind == OccupancyKind.SERVICE
    booking.refresh_from_db()
    # The request lost its hold; its own sweep still records the expiry and tells the renter.
    assert (booking.status, booking.occupancy_id) == (BookingStatus.REQUESTED, None)
    assert services.bookings_expire_unanswered(now=timezone.now()) == 1
    booking.refresh_from_db()
    assert booking.status == BookingStatus.EXPIRED


@pytest.mark.django_db
def test_two_occupancies_of_one_car_never_overlap(car):
    start = hour_from_now(days=1)
    with transaction.atomic():
        occupancy.occupancy_create(
            car_id=car.pk, kind=OccupancyKind.SERVICE, period=DateTimeTZRange(start, start + H)
        )
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        occupancy.occupancy_create(
            car_id=car.pk,
            kind=OccupancyKind.OWNER_BLOCK,
            period=DateTimeTZRange(start + H / 2, start + 2 * H),
        )
    assert occupancy.is_occupancy_conflict(caught.value)


@pytest.mark.django_db
def test_only_a_trip_can_expire(car):
    start = hour_from_now(days=1)
    with pytest.raises(IntegrityError, match="occupancy_only_trips_expire"), transaction.atomic():
        Occupancy.objects.create(
            car=car,
            kind=OccupancyKind.OWNER_BLOCK,
            period=DateTimeTZRange(start, start + H),
            expires_at=start,
        )


def test_writes_refuse_to_run_outside_a_transaction(transactional_db, car):
    start = hour_from_now(days=1)
    with pytest.raises(RuntimeError, match="transaction"):
        occupancy.occupancy_create(
            car_id=car.pk, kind=OccupancyKind.SERVICE, period=DateTimeTZRange(start, start + H)
        )


# --- The migration from bookings.Hold -------------------------------------------------------

BEFORE = [
    ("bookings", "0004_booking_start_scheduled_at"),
    ("keys", "0007_commands_not_after_from_keys"),
    ("vehicles", "0010_command_not_after_staged"),
]


def _migrate(targets: list[tuple[str, str]] | None) -> None:
    """To `targets`, or (None) forward to every app's latest migration, where the tests run."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets if targets is not None else executor.loader.graph.leaf_nodes())


def _holds() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, car_id, period, booking_id, block_id, service_key_id"
            " FROM bookings_hold ORDER BY id"
        )
        return cursor.fetchall()


def test_the_migration_moves_every_hold_with_its_period(
    transactional_db, request_car, renter, owner
):
    start = hour_from_now(days=2)
    requested = request_booking(request_car, renter, starts_at=start)
    confirmed = request_booking(request_car, renter, starts_at=start + 24 * H)
    services.booking_confirm(booking=confirmed, user=owner)
    block = services.block_create(
        car=request_car, user=owner, starts_at=start + 48 * H, ends_at=start + 50 * H
    )
    window = service_window(request_car, owner, starts_at=start + 72 * H)
    before = {o.pk: (o.period, o.kind, o.expires_at) for o in Occupancy.objects.all()}

    try:
        _migrate(BEFORE)  # back to holds: the same rows, each with its owner
        holds = _holds()
    finally:
        _migrate(None)  # and forward again, as production runs it
    assert [(h[0], h[3], h[4], h[5]) for h in holds] == [
        (requested.occupancy_id, requested.pk, None, None),
        (confirmed.occupancy_id, confirmed.pk, None, None),
        (block.occupancy_id, None, block.pk, None),
        (window.occupancy_id, None, None, window.pk),
    ]
    after = {o.pk: (o.period, o.kind, o.expires_at) for o in Occupancy.objects.all()}
    assert after == before
    assert after[requested.occupancy_id][2] == requested.respond_by  # the expiry, from the row
    assert Booking.objects.get(pk=requested.pk).occupancy_id == requested.occupancy_id
    assert CarBlock.objects.get(pk=block.pk).occupancy_id == block.occupancy_id
    assert DigitalKey.objects.get(pk=window.pk).occupancy_id == window.occupancy_id
    # The guarantee is in place, and new rows do not collide with the moved ids.
    with pytest.raises(services.BookingError):
        request_booking(request_car, renter, starts_at=start + 24 * H)
    later = request_booking(request_car, renter, starts_at=start + 96 * H)
    assert later.occupancy_id > max(before)
