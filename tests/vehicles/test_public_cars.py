"""A car is public only when it can be used as listed: listed, of a make the vehicle cloud can
lock and unlock remotely, with a healthy connection. One rule decides it for browse, the car
page, the API's list and detail and booking; its owner sees on My cars why it is not."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from bookings import services as booking_services
from tests.api.conftest import session_token
from tests.bookings.fixtures_bookings import hour_from_now
from tests.factories import CarFactory, RenterFactory
from vehicles import selectors
from vehicles.models import Car, ConnectionStatus

pytestmark = pytest.mark.django_db

CARS = "/api/v1/cars"
NOT_PUBLIC = ["unconnected", "not_lockable", "expired", "lock_not_granted"]


def car_that_is(kind: str, **fields: object) -> Car:
    if kind == "unconnected":
        return CarFactory(model="Unconnected", **fields)
    if kind == "not_lockable":  # the vehicle cloud cannot lock or unlock a Mazda remotely
        return CarFactory(make="MAZDA", model="MX-30", connected=True, **fields)
    if kind == "expired":
        car = CarFactory(model="Expired", connected=True, **fields)
        car.connections.update(status=ConnectionStatus.UNHEALTHY)
        return car
    if kind == "lock_not_granted":  # healthy, but the grant leaves out lock and unlock
        car = CarFactory(model="Read Only", connected=True, **fields)
        car.connections.update(scopes=["read_vehicle_info", "read_location"])
        return car
    raise AssertionError(kind)


@pytest.fixture
def public_car(db) -> Car:
    return CarFactory(model="Public", connected=True, hourly_price=20)


@pytest.mark.parametrize("kind", NOT_PUBLIC)
def test_a_car_that_cannot_be_used_as_listed_is_left_out_of_browse(client, public_car, kind):
    # The cheapest and instant-book: the car that used to top "Instant book" in browse.
    car = car_that_is(kind, hourly_price=1, instant_book=True)
    assert [c.model for c in selectors.cars_search(filters={})] == ["Public"]
    html = client.get(reverse("vehicles:car_browse"), {"instant_book": "on"}).content.decode()
    assert ">Volkswagen Public<" in html
    assert f">{car.title}<" not in html
    response = client.get(CARS)
    assert [c["model"] for c in response.json()["results"]] == ["Public"]


@pytest.mark.parametrize("kind", NOT_PUBLIC)
def test_strangers_get_404_on_a_car_that_is_not_public(client, owner, stranger, kind):
    car = car_that_is(kind, owner=owner)
    for user in (stranger, AnonymousUser()):
        with pytest.raises(Http404):
            selectors.car_for_viewer(user=user, public_id=car.public_id)
    assert client.get(car.get_absolute_url()).status_code == 404
    assert client.get(f"{CARS}/{car.public_id}").status_code == 404
    as_stranger = {"X-Session-Token": session_token(Client(), stranger)}
    assert client.get(f"{CARS}/{car.public_id}", headers=as_stranger).status_code == 404
    client.force_login(stranger)
    assert client.get(car.get_absolute_url()).status_code == 404
    booking_page = reverse("bookings:booking_request", args=[car.public_id])
    assert client.get(booking_page).status_code == 404
    # Its owner still sees it, and can fix it from there.
    assert selectors.car_for_viewer(user=owner, public_id=car.public_id) == car
    client.force_login(owner)
    assert client.get(car.get_absolute_url()).status_code == 200
    as_owner = {"X-Session-Token": session_token(Client(), owner)}
    assert client.get(f"{CARS}/{car.public_id}", headers=as_owner).status_code == 200


def test_a_public_car_is_there_for_everyone(client, public_car, stranger):
    assert selectors.car_for_viewer(user=stranger, public_id=public_car.public_id) == public_car
    assert client.get(public_car.get_absolute_url()).status_code == 200
    assert client.get(f"{CARS}/{public_car.public_id}").status_code == 200


@pytest.mark.parametrize("kind", NOT_PUBLIC)
def test_booking_a_car_that_is_not_public_is_refused(kind):
    car = car_that_is(kind)
    start = hour_from_now(days=2)
    with pytest.raises(booking_services.BookingError) as refused:
        booking_services.booking_request(
            renter=RenterFactory(),
            car=car,
            starts_at=start,
            ends_at=start + datetime.timedelta(hours=2),
        )
    assert refused.value.code in {"not_connected", "not_lockable"}
    assert not car.bookings.exists()


def test_my_cars_says_why_a_car_is_not_public_and_where_to_fix_it(
    client, owner, django_assert_num_queries
):
    unconnected = car_that_is("unconnected", owner=owner)
    mazda = car_that_is("not_lockable", owner=owner)
    expired = car_that_is("expired", owner=owner)
    car_that_is("lock_not_granted", owner=owner)
    CarFactory(owner=owner, model="Public", connected=True)
    client.force_login(owner)
    with django_assert_num_queries(4):  # session, user, cars (with the rule), photos
        response = client.get(reverse("vehicles:my_cars"))
    html = response.content.decode()
    cards = {
        model: html.split(f">{title}<")[1].split("</article>")[0]
        for model, title in [
            ("unconnected", "Volkswagen Unconnected"),
            ("mazda", "Mazda MX-30"),
            ("expired", "Volkswagen Expired"),
            ("read_only", "Volkswagen Read Only"),
            ("public", "Volkswagen Public"),
        ]
    }
    assert "Not public: connect the car to the vehicle cloud" in cards["unconnected"]
    assert f"{unconnected.get_absolute_url()}#car-connection" in cards["unconnected"]
    assert escape("Not public: this make can't be locked remotely") in cards["mazda"]
    assert reverse("vehicles:car_edit", args=[mazda.public_id]) in cards["mazda"]
    assert "Not public: reconnect: the connection expired" in cards["expired"]
    assert f"{expired.get_absolute_url()}#car-connection" in cards["expired"]
    assert "Not public: reconnect and allow carshare to lock and unlock" in cards["read_only"]
    assert "Not public" not in cards["public"]
