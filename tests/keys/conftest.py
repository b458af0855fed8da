"""Key personas and keys in each reachable state, made through the services (never factories)."""

from __future__ import annotations

import pytest

from accounts.models import User
from bookings.models import Booking
from keys import grants, selectors
from keys.models import DigitalKey
from tests.factories import RenterFactory, UserFactory


@pytest.fixture
def technician(db) -> User:
    """A registered, verified person the owner gives a service key to; nothing more."""
    return UserFactory(email="tech@example.test", name="Tina Technician")


@pytest.fixture
def co_driver(db) -> User:
    """A verified renter with a valid licence whom the renter can share the trip key with."""
    return RenterFactory(email="co@example.test", name="Cora Codriver")


@pytest.fixture
def admin(db) -> User:
    return UserFactory(email="admin@example.test", name="Ada Admin", is_staff=True)


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
