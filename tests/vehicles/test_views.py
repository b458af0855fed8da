"""The car pages through HTTP, as owner, stranger and anonymous visitor."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from bookings import services as services_bookings
from tests.factories import CarFactory, make_image_upload
from tests.vehicles.helpers import car_form_data, stored_bytes, stored_image
from vehicles import selectors, services
from vehicles.forms import CarSearchForm
from vehicles.models import Car

pytestmark = pytest.mark.django_db

BROWSE = reverse("vehicles:car_browse")
HOUR = datetime.timedelta(hours=1)


def with_photos(car: Car, count: int = 1) -> Car:
    services.car_photos_add(car=car, uploads=[make_image_upload() for _ in range(count)])
    return car


def url(name: str, car: Car) -> str:
    return reverse(f"vehicles:{name}", kwargs={"public_id": car.public_id})


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "car_edit"),
        ("post", "car_edit"),
        ("post", "car_unlist"),
        ("post", "car_relist"),
        ("post", "car_photo_delete"),
    ],
)
def test_anonymous_is_sent_to_sign_in(client, car, method, name):
    response = getattr(client, method)(url(name, car))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", ["vehicles:car_create", "vehicles:my_cars"])
def test_anonymous_is_sent_to_sign_in_for_owner_pages(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "car_edit"),
        ("post", "car_edit"),
        ("post", "car_unlist"),
        ("post", "car_relist"),
        ("post", "car_photo_delete"),
    ],
)
def test_stranger_gets_404(stranger_client, car, method, name):
    with_photos(car, 2)
    response = getattr(stranger_client, method)(
        url(name, car), {"photo": car.photos.first().pk, **car_form_data(model="Hijacked")}
    )
    assert response.status_code == 404
    car.refresh_from_db()
    assert (car.model, car.is_listed, car.photos.count()) == ("Golf", True, 2)


@pytest.mark.parametrize("name", ["car_unlist", "car_relist", "car_photo_delete"])
def test_actions_refuse_get_alike_for_owner_and_stranger(client, owner, stranger, car, name):
    # 405 for every id, the owner's and a made-up one alike, so it tells a stranger nothing.
    client.force_login(stranger)
    assert client.get(url(name, car)).status_code == 405
    made_up = reverse(f"vehicles:{name}", kwargs={"public_id": uuid.uuid4()})
    assert client.get(made_up).status_code == 405
    client.force_login(owner)
    assert client.get(url(name, car)).status_code == 405


def test_unlisted_car_detail_is_404_for_stranger_and_anonymous(client, stranger, car):
    services.car_unlist(car=car)
    assert client.get(car.get_absolute_url()).status_code == 404
    client.force_login(stranger)
    assert client.get(car.get_absolute_url()).status_code == 404


def test_unknown_car_is_404(client):
    assert client.get(f"/cars/{uuid.uuid4()}/").status_code == 404


# --- owner pages -----------------------------------------------------------------------------


def test_owner_lists_a_car_with_a_photo(owner_client, owner):
    response = owner_client.get(reverse("vehicles:car_create"))
    assert response.status_code == 200
    assert b'enctype="multipart/form-data"' in response.content

    response = owner_client.post(
        reverse("vehicles:car_create"), {**car_form_data(), "photos": [make_image_upload()]}
    )

    car = Car.objects.get(owner=owner)
    assert response.status_code == 302
    assert response["Location"] == car.get_absolute_url()
    assert (car.licence_plate, car.make, car.is_listed) == ("AB12CD", "TESLA", True)
    photo = car.photos.get()
    with stored_image(photo.thumbnail) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", services.THUMB_SIZE)
    assert stored_bytes(photo.image) != make_image_upload().read()  # re-encoded, not stored as sent


def test_create_form_shows_errors_next_to_fields(owner_client, owner):
    response = owner_client.post(reverse("vehicles:car_create"), car_form_data(year="2012"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "carshare can only connect cars from 2015 or newer." in html
    assert 'id="id_year_error"' in html
    assert 'aria-describedby="id_year_error"' in html
    assert 'aria-invalid="true"' in html
    assert "Add at least one photo." in html
    for legend in ("The car", "Where", "Price and rules", "Photos"):
        assert f"<legend>{legend}</legend>" in html
    assert not Car.objects.filter(owner=owner).exists()


def test_owner_edits_a_car_and_adds_a_photo(owner_client, car):
    with_photos(car)
    response = owner_client.get(url("car_edit", car))
    assert response.status_code == 200
    assert 'value="Golf"' in response.content.decode()

    response = owner_client.post(
        url("car_edit", car),
        {
            **car_form_data(licence_plate=car.licence_plate, hourly_price="9.50"),
            "photos": [make_image_upload()],
        },
    )

    assert response.status_code == 302
    car.refresh_from_db()
    assert (car.model, car.hourly_price, car.photos.count()) == ("Model 3", Decimal("9.50"), 2)


def test_refused_edit_keeps_the_saved_car(owner_client, car):
    response = owner_client.post(
        url("car_edit", car),
        car_form_data(licence_plate=car.licence_plate, model="Polo", daily_price="1.00"),
    )
    assert response.status_code == 200
    assert "The price per day cannot be below the price per hour." in response.content.decode()
    assert "Edit Volkswagen Golf" in response.content.decode()
    car.refresh_from_db()
    assert car.model == "Golf"


def test_unlist_hides_the_car_from_browse_and_relist_brings_it_back(owner_client, public_car):
    car = public_car
    assert car.get_absolute_url() in owner_client.get(BROWSE).content.decode()

    response = owner_client.post(url("car_unlist", car))
    assert response.status_code == 302
    assert response["Location"] == car.get_absolute_url()
    car.refresh_from_db()
    assert not car.is_listed
    assert car.get_absolute_url() not in owner_client.get(BROWSE).content.decode()
    assert "Unlisted" in owner_client.get(car.get_absolute_url()).content.decode()

    response = owner_client.post(url("car_relist", car), {"back": "my_cars"})
    assert response["Location"] == reverse("vehicles:my_cars")
    car.refresh_from_db()
    assert car.is_listed
    assert car.get_absolute_url() in owner_client.get(BROWSE).content.decode()


def test_relist_refused_when_the_plate_is_taken_says_why(owner_client, car):
    services.car_unlist(car=car)
    CarFactory(licence_plate=car.licence_plate)
    response = owner_client.post(url("car_relist", car), follow=True)
    assert "A listed car already has this licence plate." in response.content.decode()
    car.refresh_from_db()
    assert not car.is_listed


def test_owner_deletes_a_photo(owner_client, car):
    first, second = with_photos(car, 2).photos.all()
    response = owner_client.post(url("car_photo_delete", car), {"photo": first.pk, "confirm": "1"})
    assert response.status_code == 302
    assert response["Location"] == url("car_edit", car)
    assert list(car.photos.all()) == [second]


def test_last_photo_is_kept_with_a_reason(owner_client, car):
    photo = with_photos(car).photos.get()
    response = owner_client.post(
        url("car_photo_delete", car), {"photo": photo.pk, "confirm": "1"}, follow=True
    )
    assert "A listed car needs at least one photo." in response.content.decode()
    assert car.photos.count() == 1


def test_photo_delete_with_htmx_returns_the_photos_partial(owner_client, car):
    first, _ = with_photos(car, 2).photos.all()
    response = owner_client.post(
        url("car_photo_delete", car),
        {"photo": first.pk, "confirm": "1"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="car-photos"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]
    assert car.photos.count() == 1

    response = owner_client.post(
        url("car_photo_delete", car),
        {"photo": car.photos.get().pk, "confirm": "1"},
        headers={"HX-Request": "true"},
    )
    assert "A listed car needs at least one photo." in response.content.decode()


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_photo_delete_asks_first(owner_client, car, htmx):
    first, _ = with_photos(car, 2).photos.all()
    edit = owner_client.get(url("car_edit", car)).content.decode()
    assert "hx-confirm" not in edit  # a question only JavaScript can ask is not enough
    headers = {"HX-Request": "true"} if htmx else {}
    response = owner_client.post(url("car_photo_delete", car), {"photo": first.pk}, headers=headers)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Delete this photo?" in html
    assert f'name="photo" value="{first.pk}"' in html
    assert 'name="confirm" value="1"' in html
    assert ("<html" in html) is not htmx
    assert car.photos.count() == 2

    response = owner_client.post(
        url("car_photo_delete", car), {"photo": first.pk, "confirm": "1"}, headers=headers
    )
    assert car.photos.count() == 1


def test_garbage_photo_id_changes_nothing(owner_client, car):
    with_photos(car, 2)
    response = owner_client.post(url("car_photo_delete", car), {"photo": "drop table"})
    assert response.status_code == 302
    assert car.photos.count() == 2


def test_my_cars_shows_listed_and_unlisted_with_thumbnails(
    owner_client, owner, django_assert_num_queries
):
    listed = with_photos(CarFactory(owner=owner, model="Listed One"))
    unlisted = services.car_unlist(car=with_photos(CarFactory(owner=owner, model="Hidden One")))
    CarFactory(model="Not Mine")
    # session, user, cars, photos
    with django_assert_num_queries(4):
        response = owner_client.get(reverse("vehicles:my_cars"))
    html = response.content.decode()
    assert "Listed One" in html
    assert "Hidden One" in html
    assert "Unlisted: hidden from search" in html
    assert "Not Mine" not in html
    for car in (listed, unlisted):
        assert car.photos.get().thumbnail.url in html


# --- detail ----------------------------------------------------------------------------------


def test_detail_shows_the_car_to_anyone(client, public_car):
    car = public_car
    photo = with_photos(car).photos.get()
    response = client.get(car.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert "Volkswagen Golf" in html
    assert photo.image.url in html
    assert 'alt="Photo 1 of the Volkswagen Golf"' in html
    assert "€8.00" in html
    assert "€50.00" in html
    assert "Damrak 1" in html
    assert "Instant book" in html
    assert url("car_edit", car) not in html
    assert car.licence_plate not in html  # only the owner sees the plate


def test_detail_gives_the_owner_edit_and_unlist(owner_client, car):
    html = owner_client.get(car.get_absolute_url()).content.decode()
    assert url("car_edit", car) in html
    assert url("car_unlist", car) in html


def test_owner_sees_their_unlisted_car_with_relist(owner_client, car):
    services.car_unlist(car=car)
    response = owner_client.get(car.get_absolute_url())
    assert response.status_code == 200
    assert url("car_relist", car) in response.content.decode()


# --- browse ----------------------------------------------------------------------------------


def test_browse_shows_result_cards(client):
    car = with_photos(
        CarFactory(connected=True, hourly_price=Decimal("7.5"), daily_price=Decimal("45"))
    )
    response = client.get(BROWSE)
    html = response.content.decode()
    assert response.status_code == 200
    assert car.photos.get().thumbnail.url in html
    assert 'alt="Volkswagen Golf from 2021"' in html
    assert "€7.50" in html
    assert "€45.00" in html
    assert "5 seats" in html
    assert "Petrol" in html
    assert "Manual" in html
    assert "Instant book" in html
    assert "1 car found" in html


def test_browse_shows_distance_when_searching_near_a_place(client):
    CarFactory(connected=True)
    html = client.get(BROWSE, {"lat": "52.370000", "lng": "4.890000", "sort": "distance"})
    assert "0.7 km away" in html.content.decode()


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"city": "utrecht"}, "Utrecht Car", "Amsterdam Car"),
        ({"make": "TESLA"}, "Utrecht Car", "Amsterdam Car"),
        ({"max_price": "9"}, "Amsterdam Car", "Utrecht Car"),
        ({"seats": "7"}, "Utrecht Car", "Amsterdam Car"),
        ({"fuel_type": "electric"}, "Utrecht Car", "Amsterdam Car"),
        ({"transmission": "automatic"}, "Utrecht Car", "Amsterdam Car"),
        ({"instant_book": "on"}, "Amsterdam Car", "Utrecht Car"),
        ({"lat": "52.37", "lng": "4.89", "radius_km": "10"}, "Amsterdam Car", "Utrecht Car"),
    ],
)
def test_browse_filters(client, params, shown, hidden):
    CarFactory(connected=True, model="Amsterdam Car")
    CarFactory(
        connected=True,
        model="Utrecht Car",
        make="TESLA",
        city="Utrecht",
        latitude=Decimal("52.090700"),
        longitude=Decimal("5.121400"),
        hourly_price=Decimal("15.00"),
        daily_price=Decimal("90.00"),
        seats=7,
        fuel_type="electric",
        transmission="automatic",
        instant_book=False,
    )
    html = client.get(BROWSE, params).content.decode()
    assert shown in html
    assert hidden not in html


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"lat": "52.37"}, "Give both latitude and longitude, or neither."),
        ({"lat": "abc", "lng": "4.89"}, "Enter a number."),
        ({"sort": "distance"}, "Sorting by distance needs a latitude and longitude."),
        ({"min_price": "20", "max_price": "10"}, "The maximum price is below the minimum price."),
        ({"available_from": "2030-05-01T10:00"}, "Give the end as well, or neither date."),
        ({"available_to": "2030-05-01T10:00"}, "Give the start as well, or neither date."),
        (
            {"available_from": "2030-05-01T10:00", "available_to": "2030-05-01T10:00"},
            "The end must be after the start.",
        ),
        (
            {"available_from": "2030-05-01T10:00", "available_to": "2030-08-02T10:00"},
            "Search at most 92 days at a time.",
        ),
        ({"available_from": "tomorrow", "available_to": "2030-05-01T10:00"}, "Enter a valid date"),
        # 02:30 does not exist in Amsterdam on the night clocks go forward.
        (
            {"available_from": "2030-03-31T02:30", "available_to": "2030-04-01T10:00"},
            "be interpreted in time zone Europe/Amsterdam",
        ),
    ],
)
def test_browse_with_bad_filters_shows_errors(client, params, error):
    CarFactory(connected=True, model="Any Car")
    response = client.get(BROWSE, params)
    html = response.content.decode()
    assert response.status_code == 200
    assert error in html
    assert "Some filters need fixing" in html
    assert "Any Car" not in html


def test_browse_pages_and_survives_bad_page_numbers(client, settings):
    settings.CARSHARE_SEARCH_PAGE_SIZE = 2
    for price in range(1, 6):  # five cars, three pages, cheapest first
        CarFactory(
            connected=True,
            model=f"Car {price}",
            hourly_price=Decimal(price),
            daily_price=Decimal(50),
        )

    page_two = client.get(BROWSE, {"page": "2", "city": "Amsterdam"}).content.decode()
    assert "Car 3" in page_two
    assert "Car 1" not in page_two
    assert "Page 2 of 3" in page_two
    assert "?page=3&amp;city=Amsterdam" in page_two or "?city=Amsterdam&amp;page=3" in page_two

    garbage = client.get(BROWSE, {"page": "zzz"})
    assert garbage.status_code == 200
    assert "Car 1" in garbage.content.decode()
    too_far = client.get(BROWSE, {"page": "999"})
    assert too_far.status_code == 200
    assert "Car 5" in too_far.content.decode()
    assert "Page 3 of 3" in too_far.content.decode()


def test_browse_with_htmx_returns_only_the_results(client):
    CarFactory(connected=True, model="Golf")
    response = client.get(BROWSE, {"city": "Amsterdam"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="car-results"')
    assert "<html" not in html
    assert "<form" not in html
    assert "Golf" in html
    assert "HX-Request" in response["Vary"]
    assert "HX-Request" in client.get(BROWSE)["Vary"]


def test_browse_page_works_without_javascript(client):
    html = client.get(BROWSE).content.decode()
    assert f'action="{BROWSE}"' in html
    assert 'method="get"' in html
    assert 'type="submit"' in html
    assert 'hx-target="#car-results"' in html
    assert "<script>" not in html  # the CSP allows no inline script


@pytest.mark.parametrize("cars", [1, 6])
def test_browse_query_count_does_not_grow_with_results(client, django_assert_num_queries, cars):
    for _ in range(cars):
        with_photos(CarFactory(connected=True), 2)
    with django_assert_num_queries(3):  # count, cars, photos
        response = client.get(BROWSE)
    assert response.content.decode().count('class="card"') == cars


def test_browse_dates_are_amsterdam_time_and_say_so(client):
    html = client.get(BROWSE).content.decode()
    assert 'type="datetime-local"' in html
    assert "Amsterdam time (Europe/Amsterdam)" in html
    form = CarSearchForm({"available_from": "2030-07-01T10:00", "available_to": "2030-07-01T12:00"})
    assert form.is_valid(), form.errors
    start = form.cleaned_data["available_from"]
    assert start == datetime.datetime(2030, 7, 1, 8, 0, tzinfo=datetime.UTC)  # CEST, UTC+2


@pytest.mark.parametrize("cars", [2, 20])
def test_browse_by_dates_query_count_does_not_grow_with_results(
    client, django_assert_num_queries, owner, cars
):
    start = datetime.datetime(2030, 5, 1, 8, tzinfo=datetime.UTC)
    for n in range(cars):
        car = with_photos(CarFactory(connected=True, owner=owner), 2)
        # Holds outside the searched range, so every car is still a result.
        block_start = start + datetime.timedelta(days=2 + n % 3)
        services_bookings.block_create(
            car=car, user=owner, starts_at=block_start, ends_at=block_start + HOUR
        )
    dates = {"available_from": "2030-05-01T10:00", "available_to": "2030-05-02T10:00"}
    with django_assert_num_queries(3):  # count, cars (holds checked inside), photos
        response = client.get(BROWSE, dates)
    html = response.content.decode()
    assert f"{cars} cars found" in html
    assert html.count('class="card"') == min(cars, 12)


def test_browse_by_dates_works_inside_another_query(owner):
    """The availability test is SQL written against the outer car's columns: it must still
    point at the right car when the search becomes a subquery (its aliases are renamed)."""
    start = datetime.datetime(2030, 5, 1, 8, tzinfo=datetime.UTC)
    taken, free = (
        CarFactory(connected=True, owner=owner, model="Taken"),
        CarFactory(connected=True, owner=owner, model="Free"),
    )
    services_bookings.block_create(
        car=taken, user=owner, starts_at=start + HOUR, ends_at=start + 2 * HOUR
    )
    form = CarSearchForm({"available_from": "2030-05-01T10:00", "available_to": "2030-05-01T14:00"})
    assert form.is_valid(), form.errors
    found = selectors.cars_search(filters=form.cleaned_data)
    assert list(found) == [free]
    outer = Car.objects.filter(pk__in=found.values("pk")).exclude(pk__in=found.values("pk"))
    assert list(Car.objects.filter(pk__in=found.values("pk"))) == [free]
    assert not outer.exists()


def test_browse_cards_name_fuel_and_transmission(client):
    CarFactory(connected=True, fuel_type="electric", transmission="automatic")
    html = client.get(BROWSE).content.decode()
    assert "<li>Electric</li>" in html
    assert "<li>Automatic</li>" in html
