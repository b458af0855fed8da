"""A car connected to a simulator vehicle the way Connect would connect it (to move to
tests/conftest.py). Import the fixtures into a test module:

    from tests.vehicles.fixtures_cloud import connected_car, sim_vehicle_id  # noqa: F401
"""

from __future__ import annotations

import pytest
from django.conf import settings

from vehicles import connect
from vehicles.cloud import connections
from vehicles.cloud.configured import get_provider
from vehicles.cloud.provider import CONNECT_SCOPES
from vehicles.models import Car


def connect_car(sim, car: Car, **vehicle_fields) -> str:
    """Create a simulator vehicle for the car's owner, consent headlessly, exchange the code
    and store the connection; returns the simulator's vehicle id."""
    vehicle = sim.add_vehicle(
        owner_email=car.owner.email,
        make=car.make,
        model=car.model,
        year=car.year,
        **vehicle_fields,
    )
    redirect = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope=" ".join(CONNECT_SCOPES),
        owner_email=car.owner.email,
        vehicle_ids=[vehicle["id"]],
    )
    tokens = get_provider().exchange_code(code=redirect["code"][0])
    connect.connection_create(
        car=car,
        tokens=tokens,
        vehicle_id=vehicle["id"],
        scopes=[scope.removeprefix("required:") for scope in CONNECT_SCOPES],
        attributes=None,
        vin=vehicle.get("vin", ""),
        mode="simulator",
    )
    return vehicle["id"]


@pytest.fixture
def connected_car(sim, car: Car) -> Car:
    """The owner's car, connected to an unlocked simulator vehicle (instant latency)."""
    connect_car(sim, car, is_locked=False)
    return car


@pytest.fixture
def sim_vehicle_id(connected_car: Car) -> str:
    connection = connections.connection_live_for_car(car_id=connected_car.pk)
    assert connection is not None
    return connection.vehicle_id
