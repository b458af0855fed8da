"""A bounded property-based fuzz of the whole API from its OpenAPI document (schemathesis),
in-process through the WSGI application inside the test database, signed in as an owner and
as a renter, with the ids of a real car, booking, key and command in every path.

It passes when no request gets a 5xx and every answer (status code, content type, body) is
one the document describes. Bounded and repeatable: a fixed number of examples per operation,
derandomised, so CI sees the same requests on every run. Nothing reaches a car: the car is
connected to the simulator, but without a Celery worker here, locks and unlocks only queue.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import User
from bookings.models import Booking
from carshare.wsgi import application
from keys.models import DigitalKey, KeyKind
from tests.api.conftest import session_token
from vehicles import commands
from vehicles.models import CommandAction, CommandReason

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# About 50 s per persona for the whole document on a 2-core machine (some 3,000 requests with
# schemathesis' coverage phase); no single request may take 10 s.
FUZZ = settings(
    max_examples=12,
    deadline=datetime.timedelta(seconds=10),
    derandomize=True,  # the same requests on every run: a failure here is never "flaky"
    database=None,  # nor does a replay of an earlier run's failures change what runs
    suppress_health_check=list(HealthCheck),
)


@dataclass
class World:
    ids: dict[str, str]
    tokens: dict[str, str]


@pytest.fixture
def world(confirmed_booking: Booking, owner: User, renter: User) -> Iterator[World]:
    """An owner's connected car with a confirmed booking by the renter (so a trip key), and a
    command the owner asked for: something real behind every path parameter."""
    car = confirmed_booking.car
    key = DigitalKey.objects.get(booking_id=confirmed_booking.pk, kind=KeyKind.TRIP)
    command = commands.vehicle_command_request(
        car=car, action=CommandAction.LOCK, reason=CommandReason.OWNER, actor=owner
    )
    world = World(
        ids={
            "car_id": str(car.public_id),
            "booking_id": str(confirmed_booking.public_id),
            "key_id": str(key.public_id),
            "command_id": str(command.public_id),
        },
        tokens={
            "owner": session_token(Client(), owner),
            "renter": session_token(Client(), renter),
        },
    )
    # The WSGI handler closes the database connection around each request, which would end
    # the test's transaction: unhook that for the fuzz, as Django's test client does around
    # its own requests (which is also why this comes after the sign-ins above).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield world
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _call(case: Any, world: World, persona: str) -> None:
    for name in list(case.path_parameters or {}):
        if name in world.ids:
            case.path_parameters[name] = world.ids[name]
    if isinstance(case.body, dict) and isinstance(case.body.get("car"), str):
        case.body["car"] = world.ids["car_id"]  # POST /bookings names its car in the body
    case.call_and_validate(headers={"X-Session-Token": world.tokens[persona]}, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_api_as_the_owner(case, world):
    _call(case, world, "owner")


@schema.parametrize()
@FUZZ
def test_api_as_the_renter(case, world):
    _call(case, world, "renter")
