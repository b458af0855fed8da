"""What the apps ask of PostgreSQL's errors and of access lookups (carshare/db.py)."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction
from django.http import Http404

from carshare import db
from tests.factories import CarFactory
from vehicles.models import PLATE_UNIQUE_WHEN_LISTED, VEHICLE_CONNECTED_ONCE, Car


def test_a_violation_is_known_by_its_constraint_name(owner):
    CarFactory(owner=owner, licence_plate="AB12CD")

    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        CarFactory(owner=owner, licence_plate="AB12CD")

    assert db.violates(caught.value, PLATE_UNIQUE_WHEN_LISTED)
    assert not db.violates(caught.value, VEHICLE_CONNECTED_ONCE)


def test_an_error_without_a_database_cause_violates_nothing():
    assert not db.violates(IntegrityError("car_plate_unique_when_listed"), PLATE_UNIQUE_WHEN_LISTED)


def test_one_or_404_finds_the_row_by_its_public_id(owner):
    car = CarFactory(owner=owner)

    assert db.one_or_404(Car.objects.filter(owner=owner), public_id=car.public_id) == car


@pytest.mark.parametrize("public_id", ["not-a-uuid", uuid.uuid4()])
def test_one_or_404_is_the_same_404_for_unknown_and_malformed_ids(owner, public_id):
    with pytest.raises(Http404, match="No such car"):
        db.one_or_404(Car.objects.all(), public_id=public_id, message="No such car.")


def test_one_or_404_hides_a_row_outside_what_the_user_may_see(owner, renter):
    car = CarFactory(owner=owner)

    with pytest.raises(Http404):
        db.one_or_404(Car.objects.filter(owner=renter), public_id=car.public_id)
