"""Malformed input of any kind gets the error envelope and a 4xx, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carshare.api import server_error_page
from carshare.errors import DomainError
from tests.api.helpers import CARS, assert_envelope, assert_error, car_payload, car_url
from tests.factories import make_image_upload
from vehicles import selectors, services
from vehicles.forms import CarForm

JSON = "application/json"
CAR_FIELDS = CarForm.Meta.fields
SEARCH_PARAMS = ["city", "make", "lat", "lng", "radius_km", "min_price", "max_price", "seats",
                 "fuel_type", "transmission", "instant_book", "sort", "limit", "offset"]  # fmt: skip


# --- Bodies that are not a JSON object ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{bad json", "bad_request"),
        ('{"make": "TOYOTA",}', "bad_request"),
        ("[" * 100_000, "bad_request"),  # deeper than the JSON parser recurses
        ('{"year": ' + "9" * 5000 + "}", "bad_request"),  # more digits than Python parses
        ("", "invalid"),
        ("null", "invalid"),
        ("[]", "invalid"),
        ('[{"make": "TOYOTA"}]', "invalid"),
        ('"a string"', "invalid"),
        ("42", "invalid"),
        ("true", "invalid"),
    ],
)
def test_create_refuses_bodies_that_are_no_json_object(client, owner_auth, body, code):
    response = client.post(CARS, body, content_type=JSON, headers=owner_auth)

    assert_error(response, 400, code)


def test_create_refuses_form_encoded_bodies(client, owner_auth):
    response = client.post(
        CARS,
        "make=TOYOTA&model=Yaris",
        content_type="application/x-www-form-urlencoded",
        headers=owner_auth,
    )

    assert_error(response, 400, "bad_request")
    response = client.post(CARS, car_payload(), headers=owner_auth)  # multipart/form-data
    assert_error(response, 400, "bad_request")


def test_a_json_body_is_read_whatever_its_content_type(client, owner_auth):
    # No cookie authenticates here, so reading text/plain as JSON opens no CSRF hole.
    body = json.dumps(car_payload())

    response = client.post(CARS, body, content_type="text/plain", headers=owner_auth)

    assert response.status_code == 201, response.content


def test_null_everywhere_is_refused_per_field(client, owner_auth, car):
    nulls = dict.fromkeys(CAR_FIELDS)

    response = client.post(CARS, nulls, content_type=JSON, headers=owner_auth)
    assert_error(response, 400, "invalid", "make", "year", "hourly_price", "instant_book")

    response = client.patch(car_url(car.public_id), nulls, content_type=JSON, headers=owner_auth)
    assert_error(response, 400, "invalid", "make", "year", "hourly_price")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"year": 10**30}, "year"),
        ({"seats": 10**300}, "seats"),
        ({"seats": 1e308}, "seats"),
        ({"min_duration_hours": 10**20}, "min_duration_hours"),
        ({"max_duration_days": 10**20}, "max_duration_days"),
        ({"latitude": 1e308}, "latitude"),
        ({"longitude": "-1e400"}, "longitude"),
        ({"hourly_price": "1e999999"}, "hourly_price"),
        ({"hourly_price": "1e-999999"}, "hourly_price"),
        ({"daily_price": 10**40}, "daily_price"),
        ({"latitude": "NaN"}, "latitude"),
        ({"hourly_price": "Infinity"}, "hourly_price"),
        ({"seats": "5 seats"}, "seats"),
        ({"latitude": "north"}, "latitude"),
        ({"year": [2020]}, "year"),
        ({"model": {"name": "Yaris"}}, "model"),
        ({"model": 42}, "model"),
        ({"instant_book": {}}, "instant_book"),
    ],
)
def test_create_refuses_odd_values(client, owner_auth, overrides, field):
    response = client.post(CARS, car_payload(**overrides), content_type=JSON, headers=owner_auth)

    assert_error(response, 400, "invalid", field)


def test_json_nan_and_infinity_literals_are_refused(client, owner_auth):
    body = json.dumps(car_payload(latitude=float("nan"), hourly_price=float("inf")))

    response = client.post(CARS, body, content_type=JSON, headers=owner_auth)

    assert_error(response, 400, "invalid", "latitude", "hourly_price")


def test_too_large_a_body_is_413(client, owner_auth, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = car_payload(description="x" * 2000)

    assert_error(client.post(CARS, body, content_type=JSON, headers=owner_auth), 413, "too_large")


def test_a_refusal_from_the_service_is_409(client, owner_auth, monkeypatch):
    # Two owners racing for one plate both pass the form; the database's constraint decides
    # and car_create turns the loser's IntegrityError into a CarError.
    def lose_the_race(**kwargs: Any) -> None:
        raise services.CarError("A listed car already has this licence plate.")

    monkeypatch.setattr(services, "car_create", lose_the_race)

    response = client.post(CARS, car_payload(), content_type=JSON, headers=owner_auth)

    error = assert_error(response, 409, "conflict")
    assert error["message"] == "A listed car already has this licence plate."


# --- Uploads ----------------------------------------------------------------------------------


def test_multipart_without_a_boundary_is_400(client, car, owner_auth):
    response = client.post(
        f"{car_url(car.public_id)}/photos",
        b"--x\r\n\r\n",
        content_type="multipart/form-data",
        headers=owner_auth,
    )

    assert_error(response, 400, "bad_request")


def test_too_many_files_in_one_request_is_400(client, car, owner_auth, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    uploads = [make_image_upload(), make_image_upload(), make_image_upload()]

    response = client.post(
        f"{car_url(car.public_id)}/photos", {"photos": uploads}, headers=owner_auth
    )

    assert_error(response, 400, "bad_request")


# --- Paths and methods ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "car_id", ["not-a-uuid", "1", "0000", "%00", "00000000-0000-4000-8000-000000000000"]
)
def test_ids_that_name_no_car_are_404(client, owner_auth, car_id):
    url = car_url(car_id)
    assert_error(client.get(url), 404, "not_found")
    assert_error(client.patch(url, {}, content_type=JSON, headers=owner_auth), 404, "not_found")
    assert_error(client.delete(url, headers=owner_auth), 404, "not_found")
    response = client.post(f"{url}/photos", {"photos": make_image_upload()}, headers=owner_auth)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/cars/", "/api/v1/x/y/z"])
def test_unknown_api_paths_are_a_json_404(client, db, path):
    assert_error(client.get(path), 404, "not_found")


def test_a_wrong_method_is_a_json_405(client, car, owner_auth):
    response = client.put(car_url(car.public_id), {}, content_type=JSON, headers=owner_auth)

    assert_error(response, 405, "method_not_allowed")
    assert set(response["Allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


# --- Anything at all --------------------------------------------------------------------------

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is never "flaky"
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "0", "-1", "1e999", "NaN", "2020", "12.345", "TOYOTA", "\x00"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
car_like = st.fixed_dictionaries({}, optional=dict.fromkeys(CAR_FIELDS, json_values))
one_field_spoilt = st.builds(
    lambda name, value: car_payload(**{name: value}), st.sampled_from(CAR_FIELDS), json_values
)
json_bodies = st.one_of(json_values, car_like, one_field_spoilt).map(json.dumps)
bodies = json_bodies | st.binary(max_size=100)


def assert_handled(response: Any) -> None:
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert_envelope(response)


@FUZZ
@given(body=bodies)
def test_create_survives_any_body(client, owner_auth, body):
    assert_handled(client.post(CARS, body, content_type=JSON, headers=owner_auth))


@FUZZ
@given(body=bodies)
def test_update_survives_any_body(client, owner_auth, car, body):
    url = car_url(car.public_id)
    assert_handled(client.patch(url, body, content_type=JSON, headers=owner_auth))


param_values = st.text(max_size=12) | st.sampled_from(
    ["", "nan", "inf", "-0", "1e999999", "true", "52.37", "4.89", "distance", "9" * 40, "\x00"]
)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(SEARCH_PARAMS) | st.text(max_size=5), param_values))
def test_search_survives_any_query(client, car, params):
    assert_handled(client.get(CARS, params))


@FUZZ
@given(query=st.binary(max_size=80).map(lambda raw: raw.decode("latin-1")))
def test_search_survives_any_raw_query_string(client, car, query):
    # What a WSGI server hands over: bytes as latin-1, percent escapes and all, undecoded.
    assert_handled(client.get(CARS, QUERY_STRING=query))


# --- Production mode: the envelope whatever failed --------------------------------------------


@pytest.fixture
def production(settings):
    settings.DEBUG = False  # Django's own pages would be its HTML 404 / 500 here
    return Client(raise_request_exception=False)


def test_a_server_error_is_the_json_envelope_without_a_traceback(production, car, monkeypatch):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("password=hunter2 in a secret place")

    monkeypatch.setattr(selectors, "cars_search", broken)

    response = production.get(CARS)

    error = assert_error(response, 500, "internal_error")
    assert_envelope(response)
    assert "hunter2" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert "RuntimeError" not in error["message"]


def test_a_server_error_in_a_signed_in_write_is_the_envelope(
    production, car, owner_auth, monkeypatch
):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "car_unlist", broken)

    response = production.delete(car_url(car.public_id), headers=owner_auth)

    assert_error(response, 500, "internal_error")


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/cars/x/y", "/api/v2/cars", "/api/"])
def test_unknown_api_paths_are_a_json_404_in_production(production, db, path):
    assert_error(production.get(path), 404, "not_found")


def test_a_wrong_method_is_a_json_405_in_production(production, car, owner_auth):
    response = production.put(car_url(car.public_id), {}, content_type=JSON, headers=owner_auth)

    assert_error(response, 405, "method_not_allowed")


def test_pages_keep_their_html_404_in_production(production, db):
    response = production.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_failure_outside_the_api_handlers_is_the_envelope_under_api(rf):
    # handler500 runs for what escapes every handler (a middleware, say).
    response = server_error_page(rf.get("/api/v1/cars"))

    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "internal_error"
    assert server_error_page(rf.get("/cars/"))["Content-Type"].startswith("text/html")


# --- Domain refusals ------------------------------------------------------------------------


def test_a_refusal_keeps_its_code_status_and_fields(client, owner_auth, monkeypatch):
    # Any app's refusal is a DomainError; the one handler answers with what it carries.
    def refuse(**kwargs: Any) -> None:
        raise DomainError(
            "plate_format", "Check the plate.", status=400, fields={"licence_plate": ["Too odd."]}
        )

    monkeypatch.setattr(services, "car_create", refuse)

    response = client.post(CARS, car_payload(), content_type=JSON, headers=owner_auth)

    error = assert_error(response, 400, "plate_format", "licence_plate")
    assert error == {
        "code": "plate_format",
        "message": "Check the plate.",
        "fields": {"licence_plate": ["Too odd."]},
    }
    assert "Retry-After" not in response


def test_a_rate_limit_says_when_to_try_again(client, owner_auth, monkeypatch):
    def slow_down(**kwargs: Any) -> None:
        raise DomainError("rate_limited", "Try again in a minute.", status=429, retry_after=60)

    monkeypatch.setattr(services, "car_create", slow_down)

    response = client.post(CARS, car_payload(), content_type=JSON, headers=owner_auth)

    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "60"
    assert "fields" not in response.json()["error"]
