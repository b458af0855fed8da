"""The access doors and the search."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from tests.factories import CarFactory
from vehicles import selectors, services
from vehicles.forms import CarSearchForm

pytestmark = pytest.mark.django_db

AMSTERDAM = {"latitude": Decimal("52.374000"), "longitude": Decimal("4.898000")}
UTRECHT = {"latitude": Decimal("52.090700"), "longitude": Decimal("5.121400")}  # ~35 km away
ROTTERDAM = {"latitude": Decimal("51.922500"), "longitude": Decimal("4.479170")}  # ~57 km away


def search(**params: str) -> list:
    form = CarSearchForm(params)
    assert form.is_valid(), form.errors
    return list(selectors.cars_search(filters=form.cleaned_data))


def test_car_for_owner_gives_the_owner_their_car(owner, car):
    assert selectors.car_for_owner(user=owner, public_id=car.public_id) == car


def test_car_for_owner_gives_a_stranger_404(stranger, car):
    with pytest.raises(Http404):
        selectors.car_for_owner(user=stranger, public_id=car.public_id)


def test_car_for_owner_gives_anonymous_404(car):
    with pytest.raises(Http404):
        selectors.car_for_owner(user=AnonymousUser(), public_id=car.public_id)


def test_car_for_viewer_shows_a_public_car_to_anyone(stranger):
    car = CarFactory(connected=True)  # listed and bookable as listed (see test_public_cars.py)
    assert selectors.car_for_viewer(user=AnonymousUser(), public_id=car.public_id) == car
    assert selectors.car_for_viewer(user=stranger, public_id=car.public_id) == car


def test_car_for_viewer_hides_an_unlisted_car_from_all_but_its_owner(car, owner, stranger):
    services.car_unlist(car=car)
    assert selectors.car_for_viewer(user=owner, public_id=car.public_id) == car
    for user in (stranger, AnonymousUser()):
        with pytest.raises(Http404):
            selectors.car_for_viewer(user=user, public_id=car.public_id)


def test_car_for_viewer_unknown_id_is_404(stranger):
    with pytest.raises(Http404):
        selectors.car_for_viewer(user=stranger, public_id=uuid.uuid4())


def test_cars_of_owner_lists_listed_first_then_unlisted(owner):
    unlisted = services.car_unlist(car=CarFactory(owner=owner))
    listed = CarFactory(owner=owner)
    CarFactory()  # someone else's
    assert list(selectors.cars_of_owner(user=owner)) == [listed, unlisted]


def test_search_leaves_out_unlisted_cars():
    listed = CarFactory(connected=True)
    services.car_unlist(car=CarFactory(connected=True))
    assert search() == [listed]


def test_search_by_city_ignores_case():
    amsterdam = CarFactory(connected=True, city="Amsterdam")
    CarFactory(connected=True, city="Utrecht")
    assert search(city="amsterdam ") == [amsterdam]


def test_search_by_make():
    tesla = CarFactory(connected=True, make="TESLA")
    CarFactory(connected=True, make="VOLKSWAGEN")
    assert search(make="TESLA") == [tesla]


def test_search_by_price_range():
    CarFactory(connected=True, hourly_price=Decimal("5.00"), daily_price=Decimal("30.00"))
    middle = CarFactory(connected=True, hourly_price=Decimal("10.00"), daily_price=Decimal("60.00"))
    CarFactory(connected=True, hourly_price=Decimal("15.00"), daily_price=Decimal("90.00"))
    assert search(min_price="10", max_price="10") == [middle]
    assert len(search(min_price="6")) == 2
    assert len(search(max_price="14.99")) == 2


def test_search_by_seats_at_least():
    CarFactory(connected=True, seats=2)
    van = CarFactory(connected=True, seats=7)
    assert search(seats="5") == [van]


def test_search_by_fuel():
    electric = CarFactory(connected=True, fuel_type="electric")
    CarFactory(connected=True, fuel_type="diesel")
    assert search(fuel_type="electric") == [electric]


def test_search_by_transmission():
    automatic = CarFactory(connected=True, transmission="automatic")
    CarFactory(connected=True, transmission="manual")
    assert search(transmission="automatic") == [automatic]


def test_search_instant_book_only():
    instant = CarFactory(connected=True, instant_book=True)
    CarFactory(connected=True, instant_book=False)
    assert search(instant_book="on") == [instant]
    assert len(search()) == 2


def test_search_within_radius_sorted_by_distance():
    rotterdam = CarFactory(connected=True, **ROTTERDAM)
    utrecht = CarFactory(connected=True, **UTRECHT)
    amsterdam = CarFactory(connected=True, **AMSTERDAM)
    here = {"lat": "52.370000", "lng": "4.890000"}
    assert search(**here, radius_km="40", sort="distance") == [amsterdam, utrecht]
    nearest = search(**here, sort="distance")
    assert nearest == [amsterdam, utrecht, rotterdam]
    assert nearest[0].distance_km < 1 < 30 < nearest[1].distance_km < 40 < nearest[2].distance_km


def test_search_sorts_by_price_both_ways_and_newest():
    cheap = CarFactory(connected=True, hourly_price=Decimal("5.00"))
    dear = CarFactory(connected=True, hourly_price=Decimal("20.00"), daily_price=Decimal("100.00"))
    assert search(sort="price") == [cheap, dear]
    assert search(sort="-price") == [dear, cheap]
    assert search(sort="newest") == [dear, cheap]
