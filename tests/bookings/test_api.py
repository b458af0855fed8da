"""The bookings API: request, list, detail, the owner's answer, cancel, end, availability;
authorization (a stranger gets 404), the error envelope for every refusal, no 500 for any
input, and overlapping requests racing through separate connections."""

from __future__ import annotations

import datetime
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from bookings import services
from bookings.models import Booking, BookingStatus
from tests.api.conftest import session_token
from tests.api.helpers import assert_error
from tests.api.test_errors import FUZZ, assert_handled, json_values
from tests.factories import CarFactory, RenterFactory
from vehicles.models import Car

B = BookingStatus
JSON = "application/json"
BOOKINGS = "/api/v1/bookings"


def booking_url(public_id: object, action: str = "") -> str:
    return f"{BOOKINGS}/{public_id}" + (f"/{action}" if action else "")


def availability_url(car: Car) -> str:
    return f"/api/v1/cars/{car.public_id}/availability"


def at(days: float, hour: int = 10) -> datetime.datetime:
    """A whole hour `days` from now, in UTC: far enough ahead for the car's notice."""
    moment = timezone.now() + datetime.timedelta(days=days)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0)


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def body(car: Car, starts_at: datetime.datetime, ends_at: datetime.datetime) -> dict[str, str]:
    return {"car": str(car.public_id), "starts_at": iso(starts_at), "ends_at": iso(ends_at)}


def book(car: Car, renter, days: float = 3, hours: int = 4) -> Booking:
    starts_at = at(days)
    return services.booking_request(
        renter=renter,
        car=car,
        starts_at=starts_at,
        ends_at=starts_at + datetime.timedelta(hours=hours),
    )


@pytest.fixture
def requested(request_car: Car, renter) -> Booking:
    return book(request_car, renter)


@pytest.fixture
def confirmed(instant_car: Car, renter) -> Booking:
    booking = book(instant_car, renter)
    assert booking.status == B.CONFIRMED  # an instant-book car
    return booking


# --- POST /bookings -------------------------------------------------------------------------


def test_booking_an_instant_car_is_confirmed_at_once(client, instant_car, renter_auth):
    starts_at = at(3)
    ends_at = starts_at + datetime.timedelta(hours=26)

    response = client.post(
        BOOKINGS, body(instant_car, starts_at, ends_at), content_type=JSON, headers=renter_auth
    )

    assert response.status_code == 201, response.content
    data = response.json()
    booking = Booking.objects.get(public_id=data["id"])
    assert data["status"] == "confirmed"
    assert data["car"]["id"] == str(instant_car.public_id)
    assert data["role"] == "renter"
    assert data["actions"] == ["cancel"]
    # One day at 50.00 plus two hours at 8.00, fixed on the booking.
    assert (data["price"], data["hourly_rate"], data["daily_rate"]) == ("66.00", "8.00", "50.00")
    assert (data["currency"], booking.price) == ("EUR", Decimal("66.00"))
    # Times come back in the car's zone, with its offset: the same instants.
    assert datetime.datetime.fromisoformat(data["starts_at"]) == starts_at
    assert datetime.datetime.fromisoformat(data["ends_at"]) == ends_at
    assert data["starts_at"].endswith(("+01:00", "+02:00"))
    assert data["respond_by"] is None


def test_a_request_waits_for_the_owner_until_respond_by(client, request_car, renter_auth):
    starts_at = at(3)
    payload = body(request_car, starts_at, starts_at + datetime.timedelta(hours=2))
    # The same instant written with the car's offset rather than Z.
    payload["starts_at"] = starts_at.astimezone(
        datetime.timezone(datetime.timedelta(hours=5))
    ).isoformat()

    response = client.post(BOOKINGS, payload, content_type=JSON, headers=renter_auth)

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "requested"
    assert datetime.datetime.fromisoformat(data["starts_at"]) == starts_at
    respond_by = datetime.datetime.fromisoformat(data["respond_by"])
    assert timezone.now() < respond_by <= timezone.now() + datetime.timedelta(hours=12)


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
def test_a_time_without_an_offset_is_refused(client, instant_car, renter_auth, field):
    payload = body(instant_car, at(3), at(3, hour=14))
    payload[field] = payload[field].removesuffix("Z")

    response = client.post(BOOKINGS, payload, content_type=JSON, headers=renter_auth)

    error = assert_error(response, 400, "invalid", field)
    assert "offset is required" in error["fields"][field][0]
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    "value",
    ["tomorrow", "", "2026-13-01T10:00Z", "1999-12-31T10:00:00Z", "9999-12-31T23:59:59-14:00",
     "0001-01-01T00:00:00+14:00", 1_800_000_000, None, ["2030-01-01T10:00Z"], {"at": 1}],
)  # fmt: skip
def test_odd_times_are_a_field_error(client, instant_car, renter_auth, value):
    payload = body(instant_car, at(3), at(3, hour=14)) | {"starts_at": value}

    response = client.post(BOOKINGS, payload, content_type=JSON, headers=renter_auth)

    assert_error(response, 400, "invalid", "starts_at")


def test_overlapping_times_are_409_not_available(client, confirmed, renter_auth):
    other = RenterFactory()
    # Starts inside the owner's 30-minute buffer after the trip.
    starts_at = confirmed.ends_at + datetime.timedelta(minutes=10)
    payload = body(confirmed.car, starts_at, starts_at + datetime.timedelta(hours=2))
    headers = {"X-Session-Token": session_token(Client(), other)}

    response = client.post(BOOKINGS, payload, content_type=JSON, headers=headers)

    error = assert_error(response, 409, "not_available")
    assert error["message"] == "This car is already booked for part of that time."


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"hours": 0}, "invalid_period"),
        ({"days": -1}, "too_soon"),
        ({"days": 30}, "too_long"),
        ({"own_car": True}, "own_car"),
    ],
)
def test_each_rule_is_a_400_with_its_code(
    client, instant_car, renter_auth, owner_auth, change, code
):
    instant_car.max_duration_days = 7
    instant_car.save(update_fields=["max_duration_days"])
    starts_at = at(change.get("days", 3)) if "days" in change and change["days"] < 0 else at(3)
    ends_at = starts_at + (
        datetime.timedelta(days=30)
        if change.get("days") == 30
        else datetime.timedelta(hours=change.get("hours", 2))
    )
    headers = owner_auth if change.get("own_car") else renter_auth

    response = client.post(
        BOOKINGS, body(instant_car, starts_at, ends_at), content_type=JSON, headers=headers
    )

    assert_error(response, 400, code)


def test_a_renter_without_a_licence_is_400_no_licence(client, instant_car, stranger_auth):
    payload = body(instant_car, at(3), at(3, hour=14))

    error = assert_error(
        client.post(BOOKINGS, payload, content_type=JSON, headers=stranger_auth), 400, "no_licence"
    )
    assert "driving licence" in error["message"]


def test_an_unconnected_car_is_404(client, car, renter_auth):
    # Not public until it can be opened for a renter, so to renters it is not there at all.
    response = client.post(
        BOOKINGS, body(car, at(3), at(3, hour=14)), content_type=JSON, headers=renter_auth
    )

    assert_error(response, 404, "not_found")


def test_an_unknown_or_unlisted_car_is_404(client, car, renter_auth):
    car.is_listed = False
    car.save(update_fields=["is_listed"])
    for car_id in [car.public_id, "00000000-0000-4000-8000-000000000000"]:
        payload = {"car": str(car_id), "starts_at": iso(at(3)), "ends_at": iso(at(3, hour=14))}
        response = client.post(BOOKINGS, payload, content_type=JSON, headers=renter_auth)
        assert_error(response, 404, "not_found")


def test_booking_needs_a_session_token(client, instant_car):
    response = client.post(BOOKINGS, body(instant_car, at(3), at(3, hour=14)), content_type=JSON)

    assert_error(response, 401, "not_authenticated")
    assert_error(client.get(BOOKINGS), 401, "not_authenticated")


# --- GET /bookings --------------------------------------------------------------------------


def test_the_list_shows_mine_as_renter_and_as_owner(
    client, owner, renter, request_car, renter_auth, owner_auth, stranger_auth
):
    as_renter = book(request_car, renter, days=3)
    # The owner also rents someone else's car.
    other_car = CarFactory(connected=True)
    owner.licence_number, owner.licence_country = "NL1", "NL"
    owner.licence_expires_on = datetime.date.today() + datetime.timedelta(days=900)  # noqa: DTZ011
    owner.save()
    as_owner_renting = book(other_car, owner, days=4)

    def ids(headers: dict[str, str], **params: str) -> list[str]:
        response = client.get(BOOKINGS, params, headers=headers)
        assert response.status_code == 200, response.content
        return [result["id"] for result in response.json()["results"]]

    assert ids(renter_auth) == [str(as_renter.public_id)]
    assert ids(owner_auth) == [str(as_owner_renting.public_id), str(as_renter.public_id)]
    assert ids(owner_auth, role="owner") == [str(as_renter.public_id)]
    assert ids(owner_auth, role="renter") == [str(as_owner_renting.public_id)]
    assert ids(owner_auth, status="requested") == [str(as_renter.public_id)]
    assert ids(owner_auth, status="confirmed,cancelled") == [str(as_owner_renting.public_id)]
    assert ids(stranger_auth) == []
    owner_view = client.get(BOOKINGS, {"role": "owner"}, headers=owner_auth).json()["results"][0]
    assert (owner_view["role"], owner_view["actions"]) == (
        "owner",
        ["approve", "decline", "cancel"],
    )
    assert owner_view["renter"]["name"] == "Rick"


def test_the_list_pages_like_the_cars_list(client, request_car, renter, renter_auth):
    bookings = [book(request_car, renter, days=3 + day) for day in range(5)]

    first = client.get(BOOKINGS, {"limit": 2}, headers=renter_auth).json()
    assert first["count"] == 5
    assert [item["id"] for item in first["results"]] == [str(b.public_id) for b in bookings[:-3:-1]]
    assert first["previous"] is None
    second = client.get(first["next"], headers=renter_auth).json()
    assert [item["id"] for item in second["results"]] == [
        str(bookings[2].public_id),
        str(bookings[1].public_id),
    ]
    assert second["previous"] is not None
    last = client.get(second["next"], headers=renter_auth).json()
    assert (len(last["results"]), last["next"]) == (1, None)
    beyond = client.get(BOOKINGS, {"offset": 50}, headers=renter_auth).json()
    assert (beyond["count"], beyond["results"]) == (5, [])


def test_the_list_takes_a_fixed_number_of_queries(
    client, request_car, renter, renter_auth, django_assert_num_queries
):
    for day in range(3):
        book(request_car, renter, days=3 + day)
    client.get(BOOKINGS, headers=renter_auth)  # warm up: the session's user and the like

    # The token (session exists, session, user), the count, the page: however many bookings.
    with django_assert_num_queries(5):
        client.get(BOOKINGS, headers=renter_auth)
    book(request_car, renter, days=9)
    with django_assert_num_queries(5):
        response = client.get(BOOKINGS, headers=renter_auth)
    assert response.json()["count"] == 4


@pytest.mark.parametrize(
    "params",
    [{"role": "driver"}, {"status": "lost"}, {"status": "requested,lost"}, {"limit": 0},
     {"limit": 101}, {"offset": -1}, {"limit": "ten"}],
)  # fmt: skip
def test_bad_list_parameters_are_400(client, renter_auth, params):
    assert_error(client.get(BOOKINGS, params, headers=renter_auth), 400, "invalid")


# --- GET /bookings/{id} ---------------------------------------------------------------------


def test_participants_see_the_booking_and_its_history(client, requested, owner_auth, renter_auth):
    services.booking_decline(booking=requested, user=requested.car.owner, reason="Away that week")

    for headers, role in [(renter_auth, "renter"), (owner_auth, "owner")]:
        response = client.get(booking_url(requested.public_id), headers=headers)
        assert response.status_code == 200, response.content
        data = response.json()
        assert (data["role"], data["status"], data["actions"]) == (role, "declined", [])
        assert [
            (e["actor"], e["old_status"], e["new_status"], e["reason"]) for e in data["events"]
        ] == [
            ("renter", None, "requested", ""),
            ("owner", "requested", "declined", "Away that week"),
        ]


def test_an_instant_confirmation_is_the_systems_doing(client, confirmed, renter_auth):
    events = client.get(booking_url(confirmed.public_id), headers=renter_auth).json()["events"]

    assert [(e["actor"], e["new_status"]) for e in events] == [
        ("renter", "requested"),
        ("system", "confirmed"),
    ]


@pytest.mark.parametrize("action", ["", "approve", "decline", "cancel", "end"])
def test_a_stranger_gets_404_for_everything(client, requested, stranger_auth, action):
    url = booking_url(requested.public_id, action)
    response = (
        client.post(url, {}, content_type=JSON, headers=stranger_auth)
        if action
        else client.get(url, headers=stranger_auth)
    )

    assert_error(response, 404, "not_found")
    requested.refresh_from_db()
    assert requested.status == B.REQUESTED


@pytest.mark.parametrize("booking_id", ["not-a-uuid", "1", "00000000-0000-4000-8000-000000000000"])
def test_ids_that_name_no_booking_are_404(client, renter_auth, booking_id):
    assert_error(client.get(booking_url(booking_id), headers=renter_auth), 404, "not_found")
    response = client.post(
        booking_url(booking_id, "cancel"), {}, content_type=JSON, headers=renter_auth
    )
    assert_error(response, 404, "not_found")


# --- The owner's answer ---------------------------------------------------------------------


def test_the_owner_approves(client, requested, owner_auth):
    response = client.post(booking_url(requested.public_id, "approve"), headers=owner_auth)

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == "confirmed"
    assert data["events"][-1] | {"at": None} == {
        "at": None,
        "actor": "owner",
        "old_status": "requested",
        "new_status": "confirmed",
        "reason": "",
    }


def test_approving_twice_is_409_not_allowed(client, requested, owner_auth):
    client.post(booking_url(requested.public_id, "approve"), headers=owner_auth)

    response = client.post(booking_url(requested.public_id, "approve"), headers=owner_auth)

    assert_error(response, 409, "not_allowed")


def test_the_renter_cannot_approve_their_own_request(client, requested, renter_auth):
    for action in ["approve", "decline"]:
        url = booking_url(requested.public_id, action)
        response = client.post(url, content_type=JSON, headers=renter_auth)
        assert_error(response, 404, "not_found")
    requested.refresh_from_db()
    assert requested.status == B.REQUESTED


def test_the_owner_declines_with_or_without_a_reason(client, request_car, renter, owner_auth):
    with_reason, without = book(request_car, renter, days=3), book(request_car, renter, days=5)

    response = client.post(
        booking_url(with_reason.public_id, "decline"),
        {"reason": "In the garage"},
        content_type=JSON,
        headers=owner_auth,
    )
    assert response.status_code == 200, response.content
    assert response.json()["events"][-1]["reason"] == "In the garage"
    # No body at all: the reason is optional.
    url = booking_url(without.public_id, "decline")
    response = client.generic("POST", url, b"", headers=owner_auth)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "declined"


def test_an_overdue_request_can_no_longer_be_approved(client, requested, owner_auth, time_machine):
    time_machine.move_to(requested.respond_by + datetime.timedelta(minutes=1))

    response = client.post(booking_url(requested.public_id, "approve"), headers=owner_auth)

    assert_error(response, 409, "not_allowed")


# --- Cancel and end -------------------------------------------------------------------------


def test_the_renter_cancels_free_until_a_day_before(client, confirmed, renter_auth):
    response = client.post(
        booking_url(confirmed.public_id, "cancel"),
        {"reason": "Plans changed"},
        content_type=JSON,
        headers=renter_auth,
    )

    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["cancelled_by"]) == ("cancelled", "renter")
    assert (data["cancellation_fee"], data["refund"]) == ("0.00", data["price"])
    assert data["events"][-1]["reason"] == "Plans changed"


def test_a_late_renter_cancellation_costs_half(client, confirmed, renter_auth, time_machine):
    time_machine.move_to(confirmed.starts_at - datetime.timedelta(hours=2))

    data = client.post(
        booking_url(confirmed.public_id, "cancel"), content_type=JSON, headers=renter_auth
    ).json()

    assert Decimal(data["cancellation_fee"]) == confirmed.price / 2
    assert Decimal(data["refund"]) == confirmed.price - confirmed.price / 2


def test_the_owner_cancels_and_the_renter_gets_everything_back(
    client, confirmed, owner_auth, time_machine
):
    time_machine.move_to(confirmed.starts_at - datetime.timedelta(hours=2))

    data = client.post(
        booking_url(confirmed.public_id, "cancel"), content_type=JSON, headers=owner_auth
    ).json()

    assert (data["cancelled_by"], data["cancellation_fee"], data["refund"]) == (
        "owner",
        "0.00",
        data["price"],
    )


def test_the_renter_ends_an_active_trip(client, confirmed, renter_auth, owner_auth, time_machine):
    time_machine.move_to(confirmed.starts_at + datetime.timedelta(minutes=5))
    services.booking_start(booking_id=confirmed.pk)
    url = booking_url(confirmed.public_id, "end")

    assert_error(client.post(url, headers=owner_auth), 409, "not_allowed")
    assert client.get(booking_url(confirmed.public_id), headers=renter_auth).json()["actions"] == [
        "end"
    ]
    response = client.post(url, headers=renter_auth)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    response = client.post(
        booking_url(confirmed.public_id, "cancel"), content_type=JSON, headers=renter_auth
    )
    assert_error(response, 409, "not_allowed")


def test_a_trip_that_has_not_started_cannot_be_ended(client, confirmed, renter_auth):
    assert_error(
        client.post(booking_url(confirmed.public_id, "end"), headers=renter_auth),
        409,
        "not_allowed",
    )


@pytest.mark.parametrize(
    "payload",
    ['{"reason": 42}', '{"reason": null}', json.dumps({"reason": "x" * 501}), "[1]", "{bad"],
)
def test_odd_reasons_are_400(client, requested, owner_auth, payload):
    response = client.post(
        booking_url(requested.public_id, "decline"), payload, content_type=JSON, headers=owner_auth
    )

    assert response.status_code == 400, response.content
    requested.refresh_from_db()
    assert requested.status == B.REQUESTED


# --- Availability ---------------------------------------------------------------------------


def test_availability_shows_busy_times_without_saying_what(client, confirmed, stranger):
    car = confirmed.car
    services.block_create(
        car=car,
        user=car.owner,
        starts_at=at(6),
        ends_at=at(6, hour=18),
        reason="maintenance",
        note="Brakes",
    )
    # Ends where the trip's buffer ends: the two read as one stretch.
    services.block_create(
        car=car,
        user=car.owner,
        starts_at=confirmed.ends_at + datetime.timedelta(minutes=30),
        ends_at=confirmed.ends_at + datetime.timedelta(hours=3),
    )

    response = client.get(availability_url(car), {"from": iso(at(1)), "to": iso(at(10))})

    assert response.status_code == 200, response.content
    data = response.json()
    assert set(data) == {"car", "time_zone", "from", "to", "busy"}
    busy = [
        (
            datetime.datetime.fromisoformat(b["starts_at"]),
            datetime.datetime.fromisoformat(b["ends_at"]),
        )
        for b in data["busy"]
    ]
    assert busy == [
        (confirmed.starts_at, confirmed.ends_at + datetime.timedelta(hours=3)),
        (at(6), at(6, hour=18)),
    ]
    assert all(set(item) == {"starts_at", "ends_at"} for item in data["busy"])
    assert "Brakes" not in response.content.decode()


def test_availability_outside_the_range_is_empty(client, confirmed):
    response = client.get(availability_url(confirmed.car), {"from": iso(at(20)), "to": iso(at(30))})

    assert response.json()["busy"] == []


def test_availability_defaults_to_the_next_month(client, confirmed):
    data = client.get(availability_url(confirmed.car)).json()

    start, end = (datetime.datetime.fromisoformat(data[key]) for key in ("from", "to"))
    assert end - start == datetime.timedelta(days=31)
    assert len(data["busy"]) == 1


def test_availability_reads_a_plus_that_arrived_as_a_space(client, confirmed):
    # ?from=2030-01-01T10:00:00+02:00 unescaped: the query string decodes the + as a space.
    start = at(1).astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()
    response = client.get(f"{availability_url(confirmed.car)}?from={start}")

    assert response.status_code == 200, response.content
    assert datetime.datetime.fromisoformat(response.json()["from"]) == at(1)


def test_an_unlisted_cars_availability_is_for_its_owner_only(
    client, car, owner_auth, stranger_auth
):
    car.is_listed = False
    car.save(update_fields=["is_listed"])

    assert_error(client.get(availability_url(car)), 404, "not_found")
    assert_error(client.get(availability_url(car), headers=stranger_auth), 404, "not_found")
    assert client.get(availability_url(car), headers=owner_auth).status_code == 200
    assert_error(
        client.get(availability_url(car), headers={"X-Session-Token": "nope"}),
        401,
        "not_authenticated",
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2030-01-01T10:00:00"}, "from"),
        ({"from": "soon"}, "from"),
        ({"to": "2030-01-01"}, "to"),
        ({"from": "2030-01-02T00:00Z", "to": "2030-01-01T00:00Z"}, "to"),
        ({"from": "2030-01-01T00:00Z", "to": "2030-01-01T00:00Z"}, "to"),
        ({"from": "2030-01-01T00:00Z", "to": "2030-06-01T00:00Z"}, "to"),
        ({"from": "9999-12-31T23:00Z"}, "from"),
    ],
)
def test_bad_availability_parameters_are_400(client, public_car, params, field):
    assert_error(client.get(availability_url(public_car), params), 400, "invalid", field)


# --- Anything at all --------------------------------------------------------------------------

time_values = st.sampled_from(
    ["2030-01-01T10:00:00Z", "2030-01-01T10:00:00", "2030-01-01", "2030-02-30T10:00Z", "9999-12-31T23:59:59-14:00",
     "0001-01-01T00:00+14:00", "2030-01-01T10:00:00+24:00", "2030-01-01T10:00:00.1234567Z", "T", "\x00"]
) | json_values  # fmt: skip
booking_bodies = st.fixed_dictionaries(
    {},
    optional={
        "car": json_values | st.uuids().map(str),
        "starts_at": time_values,
        "ends_at": time_values,
    },
)
any_body = st.one_of(
    booking_bodies.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=60)
)


@FUZZ
@given(payload=any_body)
def test_request_survives_any_body(client, renter_auth, payload):
    assert_handled(client.post(BOOKINGS, payload, content_type=JSON, headers=renter_auth))


@FUZZ
@given(payload=any_body, action=st.sampled_from(["decline", "cancel", "approve", "end"]))
def test_actions_survive_any_body(client, requested, owner_auth, payload, action):
    url = booking_url(requested.public_id, action)
    assert_handled(client.post(url, payload, content_type=JSON, headers=owner_auth))


query_values = st.text(max_size=12) | st.sampled_from(
    ["", "all", "owner", "requested,confirmed", "-1", "1e999", "9" * 40, "2030-01-01T10:00Z",
     "2030-01-01T10:00 02:00", "2030-01-01T10:00", "\x00"]
)  # fmt: skip


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["role", "status", "limit", "offset"]) | st.text(max_size=5), query_values
    )
)
def test_list_survives_any_query(client, renter_auth, params):
    assert_handled(client.get(BOOKINGS, params, headers=renter_auth))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["from", "to"]) | st.text(max_size=5), query_values))
def test_availability_survives_any_query(client, car, params):
    assert_handled(client.get(availability_url(car), params))


@FUZZ
@given(query=st.binary(max_size=80).map(lambda raw: raw.decode("latin-1")))
def test_availability_survives_any_raw_query_string(client, car, query):
    assert_handled(client.get(availability_url(car), QUERY_STRING=query))


# --- Racing requests --------------------------------------------------------------------------

RACERS = 20


@pytest.mark.django_db(transaction=True)
def test_overlapping_requests_at_once_exactly_one_wins(owner):
    """RACERS renters post overlapping trips for one car at the same moment, each through its
    own Client, thread and PostgreSQL connection: one 201, every other a 409 not_available."""
    car = CarFactory(owner=owner, instant_book=False, connected=True)
    renters = [RenterFactory() for _ in range(4)]
    tokens = [session_token(Client(), renter) for renter in renters]
    base = at(5)
    barrier = threading.Barrier(RACERS)
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        try:
            # Every window overlaps every other: all contain [base + 3 h, base + 4 h).
            starts_at = base + datetime.timedelta(minutes=10 * (index % 18))
            payload = body(car, starts_at, base + datetime.timedelta(hours=4 + index % 3))
            headers = {"X-Session-Token": tokens[index % len(tokens)]}
            thread_client = Client()
            barrier.wait(timeout=30)
            response = thread_client.post(BOOKINGS, payload, content_type=JSON, headers=headers)
            with lock:
                results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(status for status, _ in results)
    assert len(results) == RACERS
    assert statuses == [201] + [409] * (RACERS - 1), results
    assert {data["error"]["code"] for status, data in results if status == 409} == {"not_available"}
    assert Booking.objects.filter(car=car, status__in=[B.REQUESTED, B.CONFIRMED]).count() == 1
