"""Car search by free dates (the browse page and GET /api/v1/cars): the car's occupancy (trips,
blocks, service windows) decides which cars show; vehicles answers it itself."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings import services
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import CarFactory
from vehicles import occupancy, selectors
from vehicles.models import Car

pytestmark = pytest.mark.django_db

H = datetime.timedelta(hours=1)
BROWSE = reverse("vehicles:car_browse")
CARS = "/api/v1/cars"
AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


def page_dates(start: datetime.datetime, end: datetime.datetime) -> dict[str, str]:
    """What the page's datetime-local inputs send: Amsterdam wall-clock time, no offset."""
    return {
        "available_from": start.astimezone(AMSTERDAM).strftime("%Y-%m-%dT%H:%M"),
        "available_to": end.astimezone(AMSTERDAM).strftime("%Y-%m-%dT%H:%M"),
    }


def api_dates(start: datetime.datetime, end: datetime.datetime) -> dict[str, str]:
    return {"available_from": start.isoformat(), "available_to": end.isoformat()}


def free_on_page(client, start: datetime.datetime, end: datetime.datetime) -> set[str]:
    response = client.get(BROWSE, page_dates(start, end))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters need fixing" not in html
    return {model for model in ("Golf", "Free Car") if f">Volkswagen {model}<" in html}


def free_in_api(client, start: datetime.datetime, end: datetime.datetime) -> set[str]:
    response = client.get(CARS, api_dates(start, end))
    assert response.status_code == 200, response.content
    return {car["model"] for car in response.json()["results"]}


@pytest.fixture
def free_car(owner) -> Car:
    return CarFactory(owner=owner, model="Free Car", connected=True)


@pytest.fixture(params=["page", "api"])
def free(request, client):
    """The models of the cars the page (or the API) shows as free over [start, end)."""
    search = free_on_page if request.param == "page" else free_in_api
    return lambda start, end: search(client, start, end)


def test_a_confirmed_booking_in_the_range_excludes_the_car(free, confirmed_booking, free_car):
    start = confirmed_booking.starts_at
    assert free(start + H, start + 2 * H) == {"Free Car"}
    assert free(start - 2 * H, start + 10 * H) == {"Free Car"}  # the range covers the trip


def test_a_pending_request_excludes_until_it_is_overdue(free, requested_booking, free_car, clock):
    start = requested_booking.starts_at
    assert free(start, start + H) == {"Free Car"}
    clock.move_to(requested_booking.respond_by, tick=False)  # overdue from respond_by on
    assert free(start, start + H) == {"Golf", "Free Car"}


def test_an_owner_block_excludes_the_car(free, public_car, owner, free_car):
    car = public_car
    start = hour_from_now(days=2)
    services.block_create(car=car, user=owner, starts_at=start, ends_at=start + 5 * H)
    assert free(start + H, start + 2 * H) == {"Free Car"}
    assert free(start + 5 * H, start + 8 * H) == {"Golf", "Free Car"}  # right after the block


def test_adjacent_trips_do_not_exclude(free, confirmed_booking, free_car):
    car = confirmed_booking.car
    buffer = datetime.timedelta(minutes=car.buffer_minutes)
    assert buffer  # the default 30 min, so the edges below are the buffer's
    trip_start, trip_end = confirmed_booking.starts_at, confirmed_booking.ends_at
    # After the trip and its buffer: free.
    assert free(trip_end + buffer, trip_end + buffer + 3 * H) == {"Golf", "Free Car"}
    # Before it, leaving room for the new trip's own buffer: free.
    assert free(trip_start - 3 * H - buffer, trip_start - buffer) == {"Golf", "Free Car"}
    # Ending at the trip's start leaves no buffer, so booking it would be refused: not free.
    assert free(trip_start - 3 * H, trip_start) == {"Free Car"}
    # Starting inside the previous trip's buffer: not free either.
    assert free(trip_end, trip_end + 3 * H) == {"Free Car"}


def test_cancelled_and_declined_bookings_free_the_car(free, request_car, renter, owner):
    start = hour_from_now(days=3)
    declined = request_booking(request_car, renter, starts_at=start)
    services.booking_decline(booking=declined, user=owner)
    cancelled = request_booking(request_car, renter, starts_at=start)
    services.booking_cancel(booking=cancelled, user=renter)
    assert free(start, start + 2 * H) == {"Golf"}


@pytest.mark.parametrize("how", ["early", "on_time"])
def test_a_finished_trip_keeps_its_buffer_in_search(free, active_booking, renter, clock, how):
    if how == "early":  # an hour into a four-hour trip
        clock.move_to(active_booking.starts_at + H, tick=False)
        services.booking_end(booking=active_booking, user=renter)
    else:
        clock.move_to(active_booking.ends_at, tick=False)
        services.booking_complete(booking_id=active_booking.pk)
    ended = timezone.now()  # the clock stands still: this is the actual end
    buffer = datetime.timedelta(minutes=30)
    soon = ended + datetime.timedelta(minutes=2)
    assert free(soon, soon + H) == set()  # inside the owner's buffer after the actual end
    assert free(ended + buffer, ended + buffer + H) == {"Golf"}


def test_the_filter_adds_no_query(confirmed_booking, free_car, django_assert_num_queries):
    start = confirmed_booking.starts_at
    cars = occupancy.cars_free_between(Car.objects.all(), start, start + H, start)
    with django_assert_num_queries(1):
        assert list(cars) == [free_car]


def test_search_by_dates_is_the_cars_own_answer(confirmed_booking, free_car):
    """No filter to register: vehicles answers from the car's occupancy, whichever apps are
    loaded, so the dates can never be ignored."""
    start = confirmed_booking.starts_at
    dates = {"available_from": start + H, "available_to": start + 2 * H}
    assert list(selectors.cars_search(filters=dates)) == [free_car]
    # Without dates the search does not look at occupancy at all.
    assert set(selectors.cars_search(filters={})) == {confirmed_booking.car, free_car}
