"""Keys in each reachable state, made through the services (never factories), on bookings of a
car connected to the simulator: keys open and lock cars. The personas (technician, co_driver,
admin) are tests/conftest.py's."""

from __future__ import annotations

import pytest

from accounts.models import User
from bookings.models import Booking
from keys import grants, selectors
from keys.models import DigitalKey
from vehicles.models import Car


@pytest.fixture
def bookable_car(connected_car: Car) -> Car:
    """Every booking here is on the simulator-connected car, whether or not the test names the
    simulator: a key's unlock, lock and end lock reach a vehicle."""
    return connected_car


@pytest.fixture
def trip_key(confirmed_booking: Booking) -> DigitalKey:
    """The renter's key of the confirmed trip, issued and waiting for the start."""
    key = selectors.trip_key_for_booking(booking_id=confirmed_booking.pk)
    assert key is not None
    return key


@pytest.fixture
def active_trip_key(active_booking: Booking) -> DigitalKey:
    """The trip key once the trip clock started the trip (the clock stands at the start)."""
    key = selectors.trip_key_for_booking(booking_id=active_booking.pk)
    assert key is not None
    assert key.status == "active"
    return key


@pytest.fixture
def shared_key(active_trip_key: DigitalKey, renter: User, co_driver: User) -> DigitalKey:
    """The co-driver's key for the whole trip, active at once (the trip is under way)."""
    return grants.key_share(key=active_trip_key, user=renter, email=co_driver.email)
