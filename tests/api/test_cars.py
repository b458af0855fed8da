"""The cars endpoints through HTTP, with real allauth session tokens."""

from __future__ import annotations

import datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from bookings import services as booking_services
from tests.api.helpers import CARS, assert_error, car_payload, car_url
from tests.factories import CarFactory, make_image_upload
from vehicles import forms, services
from vehicles.models import Car

AMSTERDAM = {"lat": "52.374", "lng": "4.898"}
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def fleet(owner, stranger) -> dict[str, Car]:
    """Four listed cars (default order, by price: berlingo, golf, niro, model3) and one
    unlisted, which no search shows."""
    cars = {
        "golf": CarFactory(
            connected=True, owner=owner, model="Golf"
        ),  # Amsterdam, 8/h, 5 seats, petrol, manual
        "model3": CarFactory(
            connected=True,
            owner=stranger,
            make="TESLA",
            model="Model 3",
            city="Utrecht",
            latitude=Decimal("52.090700"),
            longitude=Decimal("5.121400"),
            hourly_price=Decimal("15.00"),
            daily_price=Decimal("90.00"),
            fuel_type="electric",
            transmission="automatic",
            instant_book=False,
        ),
        "berlingo": CarFactory(
            connected=True,
            make="CITROEN",
            model="Berlingo",
            city="Rotterdam",
            latitude=Decimal("51.922500"),
            longitude=Decimal("4.479170"),
            hourly_price=Decimal("6.00"),
            daily_price=Decimal("40.00"),
            seats=7,
            fuel_type="diesel",
            instant_book=False,
        ),
        "niro": CarFactory(
            connected=True,
            make="KIA",
            model="Niro",
            latitude=Decimal("52.360000"),
            longitude=Decimal("4.900000"),
            hourly_price=Decimal("10.00"),
            daily_price=Decimal("60.00"),
            fuel_type="hybrid",
            transmission="automatic",
        ),
    }
    services.car_unlist(car=CarFactory(owner=owner, make="RENAULT", model="Clio"))
    return cars


def models_in(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [car["model"] for car in response.json()["results"]]


# --- GET /cars --------------------------------------------------------------------------------


def test_list_shows_listed_cars_cheapest_first(client, fleet):
    response = client.get(CARS)

    assert models_in(response) == ["Berlingo", "Golf", "Niro", "Model 3"]
    body = response.json()
    assert body["count"] == 4
    assert body["next"] is None
    assert body["previous"] is None


def test_list_item_representation(client, fleet, owner):
    services.car_photos_add(car=fleet["golf"], uploads=[make_image_upload()])

    golf = client.get(CARS, {"make": "VOLKSWAGEN"}).json()["results"][0]

    golf_car = fleet["golf"]
    assert golf["id"] == str(golf_car.public_id)
    assert golf["make_name"] == "Volkswagen"
    assert golf["licence_plate"] is None  # plate and VIN: the owner's eyes only
    assert golf["vin"] is None
    assert (golf["hourly_price"], golf["daily_price"], golf["currency"]) == ("8.00", "50.00", "EUR")
    assert (golf["latitude"], golf["longitude"]) == (52.374, 4.898)
    assert golf["owner"] == {"name": "Olga"}  # first name, never the email
    assert owner.email not in str(golf)
    assert golf["url"] == f"http://testserver/cars/{golf_car.public_id}/"
    assert golf["distance_km"] is None
    [photo] = golf["photos"]
    assert photo["url"].startswith("http://testserver/media/cars/")
    assert photo["thumbnail_url"].startswith("http://testserver/media/cars/")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"city": "amsterdam"}, ["Golf", "Niro"]),
        ({"make": "TESLA"}, ["Model 3"]),
        ({"min_price": "8"}, ["Golf", "Niro", "Model 3"]),
        ({"max_price": "9.99"}, ["Berlingo", "Golf"]),
        ({"min_price": "7", "max_price": "10"}, ["Golf", "Niro"]),
        ({"seats": "6"}, ["Berlingo"]),
        ({"fuel_type": "electric"}, ["Model 3"]),
        ({"transmission": "automatic"}, ["Niro", "Model 3"]),
        ({"instant_book": "true"}, ["Golf", "Niro"]),
        ({"instant_book": "false"}, ["Berlingo", "Golf", "Niro", "Model 3"]),
        ({**AMSTERDAM, "radius_km": "5"}, ["Golf", "Niro"]),
        ({**AMSTERDAM, "radius_km": "50"}, ["Golf", "Niro", "Model 3"]),
        (AMSTERDAM, ["Golf", "Niro", "Model 3", "Berlingo"]),  # nearest first
        ({**AMSTERDAM, "sort": "price"}, ["Berlingo", "Golf", "Niro", "Model 3"]),
        ({"sort": "-price"}, ["Model 3", "Niro", "Golf", "Berlingo"]),
        ({"sort": "newest"}, ["Niro", "Berlingo", "Model 3", "Golf"]),
        # The browse form submits empty fields; they mean "any", as on the page.
        (
            {"city": "", "make": "", "lat": "", "lng": "", "sort": ""},
            ["Berlingo", "Golf", "Niro", "Model 3"],
        ),
        ({"city": "Groningen"}, []),
    ],
)
def test_list_filters(client, fleet, query, expected):
    response = client.get(CARS, query)

    assert models_in(response) == expected
    assert response.json()["count"] == len(expected)


def test_list_gives_distance_from_the_searched_point(client, fleet):
    results = client.get(CARS, AMSTERDAM).json()["results"]

    distances = {car["model"]: car["distance_km"] for car in results}
    assert distances["Golf"] == 0
    assert 30 < distances["Model 3"] < 40  # Amsterdam to Utrecht
    assert 50 < distances["Berlingo"] < 65  # Amsterdam to Rotterdam


def test_list_pages_with_limit_and_offset(client, fleet):
    first = client.get(CARS, {"fuel_type": "", "limit": 3}).json()

    assert [car["model"] for car in first["results"]] == ["Berlingo", "Golf", "Niro"]
    assert first["count"] == 4
    assert first["previous"] is None
    next_url = urlsplit(first["next"])
    assert next_url.path == CARS
    assert parse_qs(next_url.query) == {"limit": ["3"], "offset": ["3"]}

    second = client.get(first["next"]).json()
    assert [car["model"] for car in second["results"]] == ["Model 3"]
    assert second["next"] is None
    assert parse_qs(urlsplit(second["previous"]).query) == {"limit": ["3"], "offset": ["0"]}


def test_list_pages_keep_the_filters(client, fleet):
    first = client.get(CARS, {"city": "Amsterdam", "limit": 1}).json()

    assert first["count"] == 2
    assert parse_qs(urlsplit(first["next"]).query)["city"] == ["Amsterdam"]
    assert models_in(client.get(first["next"])) == ["Niro"]


def test_list_offset_past_the_end_is_an_empty_page(client, fleet):
    body = client.get(CARS, {"offset": 10}).json()

    assert (body["count"], body["results"], body["next"]) == (4, [], None)


def test_list_default_page_size_is_20(client, owner):
    CarFactory.create_batch(21, owner=owner, connected=True)

    body = client.get(CARS).json()

    assert (body["count"], len(body["results"])) == (21, 20)
    assert body["next"] is not None


@pytest.mark.parametrize("cars", [2, 20])
def test_list_by_dates_query_count_is_flat(client, owner, django_assert_num_queries, cars):
    start = datetime.datetime(2030, 5, 1, 8, tzinfo=datetime.UTC)
    for n in range(cars):
        car = CarFactory(owner=owner, connected=True)
        services.car_photos_add(car=car, uploads=[make_image_upload()])
        block_start = start + datetime.timedelta(days=2 + n % 3)  # outside the searched range
        booking_services.block_create(
            car=car, user=owner, starts_at=block_start, ends_at=block_start + HOUR
        )
    dates = {"available_from": start.isoformat(), "available_to": (start + DAY).isoformat()}

    # count, the page of cars with their owners (holds checked inside), their photos
    with django_assert_num_queries(3):
        response = client.get(CARS, {**dates, "limit": "100"})

    assert len(response.json()["results"]) == cars


def test_list_by_dates_reads_the_offset(client, owner):
    car = CarFactory(owner=owner, connected=True)
    start = datetime.datetime(2030, 5, 1, 8, tzinfo=datetime.UTC)
    booking_services.block_create(car=car, user=owner, starts_at=start, ends_at=start + HOUR)
    # 10:00+02:00 is 08:00 UTC, inside the block; 10:00Z is after it.
    taken = {
        "available_from": "2030-05-01T10:00:00+02:00",
        "available_to": "2030-05-01T10:30+02:00",
    }
    free = {"available_from": "2030-05-01T10:00:00Z", "available_to": "2030-05-01T11:00:00Z"}
    assert client.get(CARS, taken).json()["count"] == 0
    assert client.get(CARS, free).json()["count"] == 1


def test_list_query_count_is_flat(client, fleet, django_assert_num_queries):
    for car in fleet.values():
        services.car_photos_add(car=car, uploads=[make_image_upload(), make_image_upload()])

    # count, the page of cars with their owners, their photos
    with django_assert_num_queries(3):
        response = client.get(CARS, AMSTERDAM)

    assert len(response.json()["results"]) == 4


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"lat": "abc", "lng": "4"}, "lat"),
        ({"lat": "91", "lng": "4"}, "lat"),
        ({"lng": "4.9"}, "__all__"),  # needs lat as well
        ({"radius_km": "5"}, "radius_km"),
        ({**AMSTERDAM, "radius_km": "5000"}, "radius_km"),
        ({"sort": "distance"}, "sort"),
        ({"sort": "cheapest"}, "sort"),
        ({"min_price": "20", "max_price": "10"}, "max_price"),
        ({"min_price": "-1"}, "min_price"),
        ({"seats": "many"}, "seats"),
        ({"seats": "99999999999999999999999999"}, "seats"),
        ({"fuel_type": "steam"}, "fuel_type"),
        ({"make": "TRABANT"}, "make"),
        ({"city": "x" * 101}, "city"),
        ({"city": "Amster\x00dam"}, "city"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": str(10**30)}, "offset"),
        ({"available_from": "2030-05-01T10:00:00+02:00"}, "available_to"),
        ({"available_to": "2030-05-01T10:00:00+02:00"}, "available_from"),
        ({"available_from": "soon", "available_to": "2030-05-01T10:00:00+02:00"}, "available_from"),
        (
            {"available_from": "2030-05-01T10:00:00+02:00", "available_to": "2030-05-01T08:00Z"},
            "available_to",
        ),
        (
            {"available_from": "2030-05-01T10:00:00+02:00", "available_to": "2030-08-02T10:00Z"},
            "available_to",
        ),
    ],
)
def test_list_refuses_bad_query_params(client, db, query, field):
    assert_error(client.get(CARS, query), 400, "invalid", field)


@pytest.mark.parametrize("field", ["available_from", "available_to"])
def test_list_refuses_a_time_without_an_offset(client, db, field):
    # The browse page reads its wall-clock times in Amsterdam; the API guesses no zone.
    dates = {
        "available_from": "2030-05-01T10:00:00+02:00",
        "available_to": "2030-05-01T12:00:00+02:00",
        field: "2030-05-01T11:00:00",
    }
    error = assert_error(client.get(CARS, dates), 400, "invalid", field)
    assert "offset is required" in error["fields"][field][0]


def test_list_reads_an_unescaped_plus_as_the_offset(client, owner):
    car = CarFactory(owner=owner, connected=True)
    start = datetime.datetime(2030, 5, 1, 8, tzinfo=datetime.UTC)
    booking_services.block_create(car=car, user=owner, starts_at=start, ends_at=start + HOUR)

    # "+02:00" typed into a URL unescaped arrives as " 02:00": 10:00+02:00 is inside the block.
    taken = "available_from=2030-05-01T10:00:00+02:00&available_to=2030-05-01T10:30:00+02:00"
    response = client.get(f"{CARS}?{taken}")

    assert response.status_code == 200, response.content
    assert response.json()["count"] == 0


# --- GET /cars/{id} ---------------------------------------------------------------------------


def test_detail_of_a_public_car_for_anyone(client, public_car):
    car = public_car
    response = client.get(car_url(car.public_id))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(car.public_id)
    assert (body["vin"], body["licence_plate"]) == (None, None)


def test_detail_shows_the_vin_and_plate_to_the_owner(client, owner_auth, owner):
    car = CarFactory(owner=owner, vin="WVWZZZ1KZAW000001")

    body = client.get(car_url(car.public_id), headers=owner_auth).json()
    assert (body["vin"], body["licence_plate"]) == (car.vin, car.licence_plate)


def test_unlisted_car_is_visible_to_its_owner_only(client, car, owner_auth, stranger_auth):
    services.car_unlist(car=car)

    assert client.get(car_url(car.public_id), headers=owner_auth).json()["is_listed"] is False
    assert_error(client.get(car_url(car.public_id), headers=stranger_auth), 404, "not_found")
    assert_error(client.get(car_url(car.public_id)), 404, "not_found")


def test_detail_of_an_unknown_car_is_404(client, db):
    assert_error(client.get(car_url("00000000-0000-4000-8000-000000000000")), 404, "not_found")
    assert_error(client.get(car_url("not-a-uuid")), 404, "not_found")


def test_a_bad_token_is_refused_even_on_reads(client, car):
    response = client.get(car_url(car.public_id), headers={"X-Session-Token": "nonsense"})

    assert_error(response, 401, "not_authenticated")


# --- POST /cars -------------------------------------------------------------------------------


def test_create_lists_a_car_for_the_signed_in_user(client, owner, owner_auth):
    response = client.post(CARS, car_payload(), content_type="application/json", headers=owner_auth)

    assert response.status_code == 201, response.content
    body = response.json()
    car = Car.objects.get(public_id=body["id"])
    assert car.owner == owner
    assert car.is_listed
    assert car.licence_plate == "XY123Z"  # normalised by CarForm
    assert car.latitude == Decimal("51.922500")
    assert car.hourly_price == Decimal("9.50")
    # Defaults for the optional fields, as on the page.
    assert (car.time_zone, car.min_notice_hours, car.max_duration_days) == (
        "Europe/Amsterdam",
        1,
        14,
    )
    assert not car.instant_book
    assert body["hourly_price"] == "9.50"
    assert body["daily_price"] == "60.00"
    assert body["vin"] == ""  # the owner sees it, empty as none was given
    assert body["photos"] == []
    # Listed, but not public until it can be opened for a renter (and a Toyota cannot be
    # locked remotely at all): absent from the search, there for its owner.
    assert models_in(client.get(CARS)) == []
    assert client.get(car_url(car.public_id), headers=owner_auth).status_code == 200


def test_create_takes_every_field(client, owner_auth):
    payload = car_payload(
        vin="WVWZZZ1KZAW000001",
        description="Small and frugal.",
        rules="No pets.",
        time_zone="Europe/Brussels",
        min_notice_hours=3,
        min_duration_hours=2,
        max_duration_days=5,
        instant_book=True,
    )

    body = client.post(CARS, payload, content_type="application/json", headers=owner_auth).json()

    for field in ("vin", "description", "rules", "time_zone", "min_notice_hours",
                  "min_duration_hours", "max_duration_days", "instant_book"):  # fmt: skip
        assert body[field] == payload[field]


def test_create_ignores_fields_it_does_not_know(client, owner, owner_auth, stranger):
    payload = car_payload(is_listed=False, owner=stranger.pk, id="x", photos=["a"], colour="red")

    response = client.post(CARS, payload, content_type="application/json", headers=owner_auth)

    assert response.status_code == 201, response.content
    car = Car.objects.get(public_id=response.json()["id"])
    assert (car.owner, car.is_listed) == (owner, True)


def test_anonymous_create_is_401(client, db):
    response = client.post(CARS, car_payload(), content_type="application/json")

    assert_error(response, 401, "not_authenticated")
    assert not Car.objects.exists()


def test_create_with_a_bad_token_is_401(client, db):
    headers = {"X-Session-Token": "made-up-token"}

    response = client.post(CARS, car_payload(), content_type="application/json", headers=headers)

    assert_error(response, 401, "not_authenticated")


def test_the_session_cookie_does_not_authenticate(owner_client):
    # Only the header token counts, so a page cannot make a signed-in browser write.
    response = owner_client.post(CARS, car_payload(), content_type="application/json")

    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"make": "TRABANT"}, "make"),
        ({"model": ""}, "model"),
        ({"model": "x" * 65}, "model"),
        ({"model": "Ya\x00ris"}, "model"),
        ({"year": 2014}, "year"),
        ({"year": 2101}, "year"),
        ({"year": "twenty"}, "year"),
        ({"licence_plate": "-"}, "licence_plate"),
        ({"licence_plate": "X" * 13}, "licence_plate"),
        ({"vin": "WVWZZZ1KZAW00000I"}, "vin"),
        ({"vin": "123"}, "vin"),
        ({"seats": 0}, "seats"),
        ({"seats": 10}, "seats"),
        ({"seats": 4.5}, "seats"),
        ({"fuel_type": "steam"}, "fuel_type"),
        ({"transmission": "cvt"}, "transmission"),
        ({"description": "x" * 4001}, "description"),
        ({"rules": "x" * 2001}, "rules"),
        ({"address": ""}, "address"),
        ({"city": ""}, "city"),
        ({"latitude": 90.5}, "latitude"),
        ({"latitude": "51.1234567"}, "latitude"),
        ({"longitude": -180.5}, "longitude"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"hourly_price": 0}, "hourly_price"),
        ({"hourly_price": "9.999"}, "hourly_price"),
        ({"hourly_price": "1000000.00"}, "hourly_price"),
        ({"daily_price": "9.00"}, "daily_price"),  # below the hourly price
        ({"min_notice_hours": 721}, "min_notice_hours"),
        ({"min_notice_hours": -1}, "min_notice_hours"),
        ({"min_duration_hours": 0}, "min_duration_hours"),
        ({"max_duration_days": 0}, "max_duration_days"),
        ({"min_duration_hours": 49, "max_duration_days": 2}, "max_duration_days"),
        ({"instant_book": "perhaps"}, "instant_book"),
        ({"instant_book": "yes"}, "instant_book"),  # JSON booleans are true and false
        ({"unlock_at_start": 0}, "unlock_at_start"),
    ],
)
def test_create_refuses_invalid_fields(client, owner_auth, overrides, field):
    response = client.post(
        CARS, car_payload(**overrides), content_type="application/json", headers=owner_auth
    )

    error = assert_error(response, 400, "invalid", field)
    assert set(error["fields"]) == {field}
    assert not Car.objects.exists()


def test_create_names_every_missing_field(client, owner_auth):
    response = client.post(CARS, {}, content_type="application/json", headers=owner_auth)

    required = {"make", "model", "year", "licence_plate", "seats", "fuel_type", "transmission",
                "address", "city", "latitude", "longitude", "hourly_price", "daily_price"}  # fmt: skip
    assert set(assert_error(response, 400, "invalid")["fields"]) == required


def test_create_refuses_a_plate_another_listed_car_has(client, owner_auth, car):
    payload = car_payload(licence_plate=car.licence_plate.lower())

    response = client.post(CARS, payload, content_type="application/json", headers=owner_auth)

    assert_error(response, 400, "invalid", "licence_plate")


# --- PATCH /cars/{id} -------------------------------------------------------------------------


def patch(client, car, data, headers):
    return client.patch(
        car_url(car.public_id), data, content_type="application/json", headers=headers
    )


def test_patch_changes_only_the_given_fields(client, car, owner_auth):
    response = patch(client, car, {"hourly_price": "7.25", "seats": 4}, owner_auth)

    assert response.status_code == 200, response.content
    assert response.json()["hourly_price"] == "7.25"
    car.refresh_from_db()
    assert (car.hourly_price, car.seats) == (Decimal("7.25"), 4)
    assert (car.model, car.daily_price, car.city) == ("Golf", Decimal("50.00"), "Amsterdam")


def test_patch_checks_the_merged_car(client, car, owner_auth):
    # 60/h is fine alone, but not with the stored 50/day.
    response = patch(client, car, {"hourly_price": "60.00"}, owner_auth)

    assert_error(response, 400, "invalid", "daily_price")
    car.refresh_from_db()
    assert car.hourly_price == Decimal("8.00")


def test_patch_null_clears_optional_text_and_is_refused_for_required_fields(
    client, car, owner_auth
):
    assert_error(patch(client, car, {"model": None}, owner_auth), 400, "invalid", "model")

    response = patch(client, car, {"description": None}, owner_auth)

    assert response.status_code == 200, response.content
    car.refresh_from_db()
    assert car.description == ""


def test_patch_refuses_a_plate_another_listed_car_has(client, car, owner_auth):
    other = CarFactory()

    response = patch(client, car, {"licence_plate": other.licence_plate}, owner_auth)

    assert_error(response, 400, "invalid", "licence_plate")


def test_patch_keeps_its_own_plate(client, car, owner_auth):
    response = patch(client, car, {"licence_plate": car.licence_plate.lower()}, owner_auth)

    assert response.status_code == 200, response.content


def test_patch_with_an_empty_object_changes_nothing(client, car, owner_auth):
    response = patch(client, car, {}, owner_auth)

    assert response.status_code == 200, response.content
    assert response.json()["model"] == "Golf"


def test_patch_of_an_unlisted_car_by_its_owner(client, car, owner_auth):
    services.car_unlist(car=car)

    response = patch(client, car, {"model": "Golf Variant"}, owner_auth)

    assert response.json()["model"] == "Golf Variant"
    assert response.json()["is_listed"] is False


# --- DELETE /cars/{id} ------------------------------------------------------------------------


def test_delete_unlists_the_car(client, car, owner_auth):
    response = client.delete(car_url(car.public_id), headers=owner_auth)

    assert response.status_code == 204
    assert response.content == b""
    car.refresh_from_db()
    assert not car.is_listed  # the row stays for bookings and keys
    assert client.get(CARS).json()["count"] == 0
    assert_error(client.get(car_url(car.public_id)), 404, "not_found")
    assert client.get(car_url(car.public_id), headers=owner_auth).status_code == 200


def test_delete_twice_is_fine(client, car, owner_auth):
    client.delete(car_url(car.public_id), headers=owner_auth)

    assert client.delete(car_url(car.public_id), headers=owner_auth).status_code == 204


# --- POST /cars/{id}/photos -------------------------------------------------------------------


def photos_url(car: Car) -> str:
    return f"{car_url(car.public_id)}/photos"


def test_photo_upload_adds_photos(client, car, owner_auth):
    uploads = [make_image_upload("front.jpg"), make_image_upload("back.png", size=(300, 200))]

    response = client.post(photos_url(car), {"photos": uploads}, headers=owner_auth)

    assert response.status_code == 201, response.content
    photos = response.json()["photos"]
    assert len(photos) == 2
    assert all(photo["url"].startswith("http://testserver/media/cars/") for photo in photos)
    assert car.photos.count() == 2
    detail = client.get(car_url(car.public_id), headers=owner_auth).json()
    assert [photo["url"] for photo in detail["photos"]] == [photo["url"] for photo in photos]


def test_photo_upload_appends_after_existing_photos(client, car, owner_auth):
    services.car_photos_add(car=car, uploads=[make_image_upload()])

    client.post(photos_url(car), {"photos": make_image_upload()}, headers=owner_auth)

    assert list(car.photos.values_list("position", flat=True)) == [0, 1]


def test_photo_upload_refuses_non_images(client, car, owner_auth):
    fake = SimpleUploadedFile("car.jpg", b"%PDF-1.4 not a picture", content_type="image/jpeg")

    response = client.post(
        photos_url(car), {"photos": [make_image_upload(), fake]}, headers=owner_auth
    )

    assert_error(response, 400, "invalid", "photos")
    assert car.photos.count() == 0


def test_photo_upload_refuses_large_files(client, car, owner_auth, monkeypatch):
    upload = make_image_upload()
    monkeypatch.setattr(forms, "MAX_PHOTO_BYTES", upload.size - 1)

    response = client.post(photos_url(car), {"photos": upload}, headers=owner_auth)

    assert_error(response, 400, "invalid", "photos")


def test_photo_upload_stops_at_ten_per_car(client, car, owner_auth):
    services.car_photos_add(car=car, uploads=[make_image_upload(size=(8, 8)) for _ in range(9)])
    two = [make_image_upload(size=(8, 8)), make_image_upload(size=(8, 8))]

    response = client.post(photos_url(car), {"photos": two}, headers=owner_auth)

    assert_error(response, 400, "invalid", "photos")
    response = client.post(photos_url(car), {"photos": make_image_upload()}, headers=owner_auth)
    assert response.status_code == 201, response.content
    assert car.photos.count() == 10


def test_photo_upload_needs_a_file(client, car, owner_auth):
    assert_error(client.post(photos_url(car), {}, headers=owner_auth), 400, "invalid", "photos")
    response = client.post(
        photos_url(car), {"photos": ["x"]}, content_type="application/json", headers=owner_auth
    )
    assert_error(response, 400, "invalid", "photos")


# --- Someone else's car, or nobody signed in --------------------------------------------------


@pytest.mark.parametrize(
    "request_for",
    [
        lambda client, car, headers: patch(client, car, {"model": "Stolen"}, headers),
        lambda client, car, headers: client.delete(car_url(car.public_id), headers=headers),
        lambda client, car, headers: client.post(
            photos_url(car), {"photos": make_image_upload()}, headers=headers
        ),
    ],
    ids=["patch", "delete", "photos"],
)
def test_strangers_get_404_and_anonymous_401(client, car, stranger_auth, request_for):
    assert_error(request_for(client, car, stranger_auth), 404, "not_found")
    assert_error(request_for(client, car, {}), 401, "not_authenticated")

    car.refresh_from_db()
    assert (car.model, car.is_listed, car.photos.count()) == ("Golf", True, 0)
