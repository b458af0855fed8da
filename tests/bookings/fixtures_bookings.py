"""Booking fixtures (a pytest plugin, loaded for every folder by tests/conftest.py): bookings
in each reachable state, made through the services on a connected car (only connected cars can
be booked). The car is connected to the real simulator only when the test drives it (see
`bookable_car`); booking, confirming and starting a trip only write rows and queue work."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from accounts.models import User
from bookings import services
from bookings.models import Booking, BookingStatus
from tests.factories import VehicleConnectionFactory
from vehicles.models import Car

B = BookingStatus


def hour_from_now(days: float = 0, hours: float = 0) -> datetime.datetime:
    """A whole hour (UTC) at least `days` + `hours` ahead."""
    moment = timezone.now() + datetime.timedelta(days=days, hours=hours + 1)
    return moment.replace(minute=0, second=0, microsecond=0)


def request_booking(
    car: Car, renter: User, *, starts_at: datetime.datetime, hours: float = 4
) -> Booking:
    return services.booking_request(
        renter=renter,
        car=car,
        starts_at=starts_at,
        ends_at=starts_at + datetime.timedelta(hours=hours),
    )


@pytest.fixture
def clock(time_machine):
    """time-machine pinned at the real now (not ticking), so tests move it on purpose."""
    time_machine.move_to(timezone.now(), tick=False)
    return time_machine


# The fixtures that point the app at the simulator: a test closing over any of them drives the
# car, and its bookings are made on the simulator-connected car.
VEHICLE_CLOUD_FIXTURES = ("sim", "connected_car", "sim_vehicle_id")


@pytest.fixture
def bookable_car(request: pytest.FixtureRequest, car: Car) -> Car:
    """The owner's car, connected, as the booking fixtures book it.

    A booking needs a connected car, not a vehicle cloud: by default the car gets a healthy
    connection row with no vehicle behind it, so no simulator starts and nothing may call it
    (a call would fail the test). A test that asks for the vehicle cloud (`sim`,
    `connected_car`, `sim_vehicle_id`) books its simulator-connected car instead, so the trip's
    unlock and end lock reach a vehicle; tests/keys/conftest.py always does."""
    if any(name in request.fixturenames for name in VEHICLE_CLOUD_FIXTURES):
        return request.getfixturevalue("connected_car")
    VehicleConnectionFactory(car=car)
    return car


@pytest.fixture
def request_car(bookable_car: Car) -> Car:
    """A connected car whose owner answers requests (not instant-book)."""
    bookable_car.instant_book = False
    bookable_car.save(update_fields=["instant_book"])
    return bookable_car


@pytest.fixture
def instant_car(bookable_car: Car) -> Car:
    assert bookable_car.instant_book  # the factory's default
    return bookable_car


@pytest.fixture
def requested_booking(request_car: Car, renter: User) -> Booking:
    """Waiting for the owner: three days ahead, four hours long."""
    return request_booking(request_car, renter, starts_at=hour_from_now(days=3))


@pytest.fixture
def confirmed_booking(requested_booking: Booking, owner: User) -> Booking:
    return services.booking_confirm(booking=requested_booking, user=owner)


@pytest.fixture
def active_booking(confirmed_booking: Booking, clock) -> Booking:
    """On the road: the clock is moved to the start and the trip clock has run."""
    clock.move_to(confirmed_booking.starts_at, tick=False)
    booking = services.booking_start(booking_id=confirmed_booking.pk)
    assert booking is not None
    return booking
