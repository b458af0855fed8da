"""The keys API through HTTP with real session tokens, on cars connected to the simulator: using
a key inside and outside its window, sharing and revoking, service keys, the rate limit, the
owner's override, the audit log, live status for key holders, who gets 404, and no 500 for any
input."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from bookings import services as booking_services
from bookings.models import Booking
from keys import grants
from keys.models import AuditEntry, DigitalKey, KeyKind
from tests.api.conftest import session_token
from tests.api.helpers import assert_error
from tests.api.test_errors import FUZZ, assert_handled, json_values
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import CarFactory, UserFactory
from tests.vehicles.fixtures_cloud import connect_car
from vehicles.models import Car, CommandStatus, VehicleCommand

JSON = "application/json"
H = datetime.timedelta(hours=1)
MIN = datetime.timedelta(minutes=1)

KEY_FIELDS = {
    "id", "kind", "status", "state", "car", "holder", "valid_from", "valid_until", "lock_until",
    "may_unlock_now", "may_lock_now", "reason_unavailable", "booking_id", "shared_by", "note",
    "created_at", "ended_at", "revoke_reason",
}  # fmt: skip


def key_url(key: DigitalKey | str, action: str = "") -> str:
    public_id = key.public_id if isinstance(key, DigitalKey) else key
    return f"/api/v1/keys/{public_id}" + (f"/{action}" if action else "")


def car_url(car: Car, action: str) -> str:
    return f"/api/v1/cars/{car.public_id}/{action}"


def command_url(public_id: object) -> str:
    return f"/api/v1/commands/{public_id}"


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def auth(user) -> dict[str, str]:
    """Headers that authenticate as `user`, from a fresh client so no cookie tags along."""
    return {"X-Session-Token": session_token(Client(), user)}


def trip_key(booking: Booking) -> DigitalKey:
    return DigitalKey.objects.get(booking_id=booking.pk, kind=KeyKind.TRIP)


# --- Using a key ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_holder_unlocks_in_the_window_and_follows_the_command_to_the_car(
    celery_worker_thread, sim, owner, renter, stranger
):
    """Real time, a real worker and the simulator: the key opens two hours before the trip
    (early access), so it works now without moving any clock."""
    car = CarFactory(owner=owner, early_access_minutes=120)
    vehicle_id = connect_car(sim, car, is_locked=True)
    booking = request_booking(car, renter, starts_at=hour_from_now())
    key = trip_key(booking)
    renter_auth = auth(renter)

    response = Client().post(key_url(key, "unlock"), headers=renter_auth)

    assert response.status_code == 202, response.content
    command = response.json()["command"]
    assert (command["action"], command["reason"], command["status"]) == (
        "unlock",
        "renter",
        "queued",
    )
    assert command["car_id"] == str(car.public_id)
    deadline = time.monotonic() + 15
    followed: dict[str, Any] = {}
    while time.monotonic() < deadline:
        followed = Client().get(command_url(command["id"]), headers=renter_auth).json()
        if followed["status"] == CommandStatus.SUCCEEDED and followed["confirmed_at"]:
            break
        time.sleep(0.1)
    assert followed["status"] == CommandStatus.SUCCEEDED, followed
    assert sim.vehicle(vehicle_id)["is_locked"] is False
    # The holder follows their own command; the owner too (their car); a stranger learns nothing.
    assert Client().get(command_url(command["id"]), headers=auth(owner)).status_code == 200
    stranger_view = Client().get(command_url(command["id"]), headers=auth(stranger))
    assert_error(stranger_view, 404, "not_found")
    entry = AuditEntry.objects.get(key=key, action="unlock", actor=renter)
    assert (entry.allowed, entry.via, str(entry.command_public_id)) == (True, "api", command["id"])


def test_unlock_before_the_window_is_409_key_not_active(client, confirmed_booking, renter):
    key = trip_key(confirmed_booking)
    headers = auth(renter)

    for action in ("unlock", "lock"):
        error = assert_error(
            client.post(key_url(key, action), headers=headers), 409, "key_not_active"
        )
        assert error["message"].startswith("This key works from")
    assert not VehicleCommand.objects.filter(key_id=key.pk).exists()
    denied = AuditEntry.objects.filter(key=key, allowed=False, code="key_not_active")
    assert denied.count() == 2


def test_after_the_end_only_locking_is_left_in_the_grace(client, active_booking, renter, clock):
    key = trip_key(active_booking)
    headers = auth(renter)
    clock.move_to(active_booking.ends_at + 5 * MIN, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)

    error = assert_error(
        client.post(key_url(key, "unlock"), headers=headers), 409, "key_not_active"
    )
    assert "only lock" in error["message"]
    detail = client.get(key_url(key), headers=headers).json()
    assert (detail["may_unlock_now"], detail["may_lock_now"]) == (False, True)
    assert detail["reason_unavailable"] == error["message"]

    response = client.post(key_url(key, "lock"), headers=headers)
    assert response.status_code == 202, response.content
    assert response.json()["command"]["action"] == "lock"

    clock.move_to(active_booking.ends_at + 16 * MIN, tick=False)  # the grace is 15 minutes
    error = assert_error(client.post(key_url(key, "lock"), headers=headers), 409, "key_not_active")
    assert error["message"] == "This key has expired."


def test_holder_unlocks_during_the_trip(client, active_booking, renter):
    key = trip_key(active_booking)
    headers = auth(renter)

    response = client.post(key_url(key, "unlock"), headers=headers)

    assert response.status_code == 202, response.content
    command = VehicleCommand.objects.get(public_id=response.json()["command"]["id"])
    assert (command.key_id, command.actor, command.action) == (key.pk, renter, "unlock")
    followed = client.get(command_url(command.public_id), headers=headers)
    assert followed.status_code == 200
    assert followed.json()["status"] == "queued"  # no worker here: it waits in the outbox


@pytest.mark.parametrize("action", ["unlock", "lock", "share"])
@pytest.mark.parametrize("who", ["owner", "stranger"])
def test_holder_only_endpoints_are_404_for_everyone_else(
    client, active_booking, owner, stranger, co_driver, action, who
):
    key = trip_key(active_booking)
    person = {"owner": owner, "stranger": stranger}[who]

    response = client.post(
        key_url(key, action), {"email": co_driver.email}, content_type=JSON, headers=auth(person)
    )

    assert_error(response, 404, "not_found")
    assert not VehicleCommand.objects.filter(actor__in=[owner, stranger]).exists()
    assert not DigitalKey.objects.filter(kind=KeyKind.SHARED).exists()


def test_key_endpoints_need_a_session_token(client, confirmed_booking):
    key = trip_key(confirmed_booking)
    assert_error(client.get("/api/v1/keys"), 401, "not_authenticated")
    assert_error(client.post(key_url(key, "unlock")), 401, "not_authenticated")


def test_a_key_id_that_is_not_a_uuid_is_404(client, renter):
    assert_error(client.get(key_url("not-a-key"), headers=auth(renter)), 404, "not_found")


# --- Reading keys ---------------------------------------------------------------------------


def test_key_detail_for_holder_and_owner_and_404_for_a_stranger(
    client, confirmed_booking, renter, owner, stranger
):
    key = trip_key(confirmed_booking)

    mine = client.get(key_url(key), headers=auth(renter))
    assert mine.status_code == 200, mine.content
    data = mine.json()
    assert set(data) == KEY_FIELDS
    assert (data["id"], data["kind"], data["status"], data["state"]) == (
        str(key.public_id),
        "trip",
        "issued",
        "upcoming",
    )
    assert data["booking_id"] == str(confirmed_booking.public_id)
    assert data["holder"] == {"name": "Rick", "email": renter.email}
    assert data["car"]["id"] == str(confirmed_booking.car.public_id)
    assert data["may_unlock_now"] is False
    assert data["reason_unavailable"].startswith("This key works from")
    assert data["valid_from"].endswith(("+01:00", "+02:00"))  # in the car's zone (Amsterdam)

    assert client.get(key_url(key), headers=auth(owner)).json()["holder"]["email"] == renter.email
    assert_error(client.get(key_url(key), headers=auth(stranger)), 404, "not_found")


def test_my_keys_by_state(client, confirmed_booking, renter, clock, django_assert_num_queries):
    headers = auth(renter)
    key_id = str(trip_key(confirmed_booking).public_id)

    def ids(state: str) -> list[str]:
        response = client.get("/api/v1/keys", {"state": state}, headers=headers)
        assert response.status_code == 200, response.content
        return [key["id"] for key in response.json()["results"]]

    assert (ids("upcoming"), ids("active"), ids("past")) == ([key_id], [], [])
    clock.move_to(confirmed_booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=confirmed_booking.pk)
    assert (ids("upcoming"), ids("active"), ids("past")) == ([], [key_id], [])
    clock.move_to(confirmed_booking.ends_at + H, tick=False)
    assert (ids("upcoming"), ids("active"), ids("past")) == ([], [], [key_id])

    # The session (2), the user, the live and the past keys (each with its booking's public
    # id): a fixed number however many keys there are.
    with django_assert_num_queries(5):
        everything = client.get("/api/v1/keys", headers=headers).json()
    assert everything["count"] == 1
    assert everything["results"][0]["state"] == "past"
    assert_error(
        client.get("/api/v1/keys", {"state": "soon"}, headers=headers), 400, "invalid", "state"
    )


def test_owner_lists_every_key_of_the_car_a_page_at_a_time(
    client, active_booking, owner, renter, stranger, co_driver, django_assert_num_queries
):
    car = active_booking.car
    client.post(
        key_url(trip_key(active_booking), "share"),
        {"email": co_driver.email},
        content_type=JSON,
        headers=auth(renter),
    )
    headers = auth(owner)

    with django_assert_num_queries(6):  # session (2), user, car, count, keys (with bookings)
        first = client.get(car_url(car, "keys"), {"limit": 1}, headers=headers).json()
    second = client.get(first["next"], headers=headers).json()

    assert first["count"] == 2
    assert {first["results"][0]["kind"], second["results"][0]["kind"]} == {"trip", "shared"}
    assert second["next"] is None
    assert_error(client.get(car_url(car, "keys"), headers=auth(renter)), 404, "not_found")
    assert_error(client.get(car_url(car, "keys"), headers=auth(stranger)), 404, "not_found")


# --- Sharing and revoking -------------------------------------------------------------------


def test_share_then_the_co_driver_unlocks_until_the_key_is_revoked(
    client, active_booking, renter, owner, co_driver
):
    key = trip_key(active_booking)
    renter_auth, co_auth = auth(renter), auth(co_driver)

    response = client.post(
        key_url(key, "share"), {"email": "CO@example.test"}, content_type=JSON, headers=renter_auth
    )

    assert response.status_code == 202, response.content
    assert response.json()["message"] == grants.share_answer(email="CO@example.test")
    listed = client.get(key_url(key, "shared"), headers=renter_auth)
    assert listed.status_code == 200, listed.content
    [shared] = listed.json()
    assert (shared["kind"], shared["status"], shared["state"]) == ("shared", "active", "active")
    assert shared["holder"] == {"name": "Cleo", "email": co_driver.email}
    assert shared["shared_by"] == {"name": "Rick"}
    assert shared["booking_id"] == str(active_booking.public_id)
    mine = client.get("/api/v1/keys", headers=co_auth).json()["results"]
    assert [k["id"] for k in mine] == [shared["id"]]

    unlock = client.post(key_url(shared["id"], "unlock"), headers=co_auth)
    assert unlock.status_code == 202, unlock.content
    assert unlock.json()["command"]["reason"] == "renter"

    revoked = client.post(
        key_url(shared["id"], "revoke"),
        {"reason": "Plans changed"},
        content_type=JSON,
        headers=renter_auth,
    )
    assert revoked.status_code == 200, revoked.content
    assert (revoked.json()["status"], revoked.json()["revoke_reason"]) == (
        "revoked",
        "Plans changed",
    )
    error = assert_error(
        client.post(key_url(shared["id"], "unlock"), headers=co_auth), 409, "key_not_active"
    )
    assert error["message"] == "This key was revoked."
    # Revoked twice: the key has already ended.
    again = client.post(key_url(shared["id"], "revoke"), content_type=JSON, headers=renter_auth)
    assert_error(again, 409, "key_not_active")


def test_share_refusals_have_codes(client, active_booking, renter, stranger, co_driver):
    key = trip_key(active_booking)
    headers = auth(renter)

    def share(**body: Any) -> Any:
        return client.post(key_url(key, "share"), body, content_type=JSON, headers=headers)

    assert_error(share(email=renter.email), 400, "not_eligible")
    late = iso(active_booking.ends_at + H)
    assert_error(share(email=co_driver.email, ends_at=late), 400, "invalid_window")
    naive = active_booking.ends_at.replace(tzinfo=None).isoformat()
    error = assert_error(share(email=co_driver.email, ends_at=naive), 400, "invalid", "ends_at")
    assert "offset is required" in error["fields"]["ends_at"][0]
    assert_error(share(), 400, "invalid", "email")
    assert not DigitalKey.objects.filter(kind=KeyKind.SHARED).exists()

    # Part of the trip, then the co-driver cannot pass their key on.
    part = share(email=co_driver.email, ends_at=iso(active_booking.starts_at + H))
    assert part.status_code == 202, part.content
    [part_key] = client.get(key_url(key, "shared"), headers=headers).json()
    onward = client.post(
        key_url(part_key["id"], "share"),
        {"email": stranger.email},
        content_type=JSON,
        headers=auth(co_driver),
    )
    assert_error(onward, 403, "not_allowed")


def test_share_answers_alike_whether_or_not_the_email_can_get_a_key(
    client,
    active_booking,
    renter,
    stranger,
    co_driver,
    django_capture_on_commit_callbacks,
):
    """An unknown address, an account without a licence, an eligible co-driver: the same status
    and body but for the address itself; only the eligible one gets a key (and the list says so)."""
    key = trip_key(active_booking)
    headers = auth(renter)
    answers = set()
    for email in ("nobody@example.test", stranger.email, co_driver.email):
        with django_capture_on_commit_callbacks() as queued:
            response = client.post(
                key_url(key, "share"), {"email": email}, content_type=JSON, headers=headers
            )
        assert [repr(c).count("send_") for c in queued].count(1) == 1, (
            email
        )  # the key's email, or an invitation
        body = response.json()
        assert body.pop("email") == email
        answers.add((response.status_code, body["message"].replace(email, "EMAIL")))
    assert answers == {(202, grants.share_answer(email="EMAIL"))}
    listed = client.get(key_url(key, "shared"), headers=headers).json()
    assert [k["holder"]["email"] for k in listed] == [co_driver.email]
    assert client.get(key_url(key, "shared"), headers=auth(stranger)).status_code == 404


def test_share_after_the_trip_is_409_key_not_active(
    client, active_booking, renter, co_driver, clock
):
    clock.move_to(active_booking.ends_at + 5 * MIN, tick=False)
    response = client.post(
        key_url(trip_key(active_booking), "share"),
        {"email": co_driver.email},
        content_type=JSON,
        headers=auth(renter),
    )
    assert_error(response, 409, "key_not_active")


def test_revoke_is_403_for_those_who_see_the_key_and_404_for_others(
    client, active_booking, renter, owner, stranger
):
    key = trip_key(active_booking)

    # A trip key ends with its booking; its holder and the owner can see it, not revoke it.
    assert_error(
        client.post(key_url(key, "revoke"), content_type=JSON, headers=auth(renter)),
        403,
        "not_allowed",
    )
    assert_error(
        client.post(key_url(key, "revoke"), content_type=JSON, headers=auth(owner)),
        403,
        "not_allowed",
    )
    assert_error(
        client.post(key_url(key, "revoke"), content_type=JSON, headers=auth(stranger)),
        404,
        "not_found",
    )
    key.refresh_from_db()
    assert key.status == "active"
    assert AuditEntry.objects.filter(action="revoke", allowed=False).count() == 2


# --- Service keys ---------------------------------------------------------------------------


def test_service_key_for_a_free_window_and_409_over_a_trip(
    client, confirmed_booking, owner, technician, stranger
):
    car = confirmed_booking.car
    headers = auth(owner)
    start = confirmed_booking.ends_at + 2 * H  # clear of the trip and its buffer
    body = {
        "email": technician.email,
        "starts_at": iso(start),
        "ends_at": iso(start + 3 * H),
        "note": "cleaning",
    }

    response = client.post(car_url(car, "service-keys"), body, content_type=JSON, headers=headers)

    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["kind"], data["status"], data["note"], data["booking_id"]) == (
        "service",
        "issued",
        "cleaning",
        None,
    )
    assert data["holder"]["email"] == technician.email
    upcoming = client.get("/api/v1/keys", {"state": "upcoming"}, headers=auth(technician))
    assert [k["id"] for k in upcoming.json()["results"]] == [data["id"]]

    over_the_trip = body | {
        "starts_at": iso(confirmed_booking.starts_at),
        "ends_at": iso(confirmed_booking.starts_at + H),
    }
    error = assert_error(
        client.post(
            car_url(car, "service-keys"), over_the_trip, content_type=JSON, headers=headers
        ),
        409,
        "not_available",
    )
    assert "booked or blocked" in error["message"]
    overlapping = body | {"starts_at": iso(start + H), "ends_at": iso(start + 5 * H)}
    assert_error(
        client.post(car_url(car, "service-keys"), overlapping, content_type=JSON, headers=headers),
        409,
        "not_available",
    )
    stranger_try = client.post(
        car_url(car, "service-keys"), body, content_type=JSON, headers=auth(stranger)
    )
    assert_error(stranger_try, 404, "not_found")
    assert DigitalKey.objects.filter(kind=KeyKind.SERVICE).count() == 1

    revoked = client.post(key_url(data["id"], "revoke"), content_type=JSON, headers=headers)
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["status"] == "revoked"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"email": "nobody@example.test"}, 400, "not_eligible"),
        ({"email": "owner@example.test"}, 400, "not_eligible"),
        ({"ends_at": "START"}, 400, "invalid_window"),
        ({"ends_at": "START+15d"}, 400, "invalid_window"),
        ({"starts_at": "2030-01-01T10:00:00"}, 400, "invalid"),
        ({"starts_at": "9999-12-31T23:59:59+00:00"}, 400, "invalid"),
        ({"note": "x" * 201}, 400, "invalid"),
    ],
)
def test_service_key_refusals_have_codes(
    client, connected_car, owner, technician, change, status, code
):
    start = hour_from_now(days=2)
    body = {"email": technician.email, "starts_at": iso(start), "ends_at": iso(start + H)} | change
    if body["ends_at"] == "START":
        body["ends_at"] = iso(start)
    elif body["ends_at"] == "START+15d":
        body["ends_at"] = iso(start + datetime.timedelta(days=15))

    response = client.post(
        car_url(connected_car, "service-keys"), body, content_type=JSON, headers=auth(owner)
    )

    assert_error(response, status, code)
    assert not DigitalKey.objects.exists()


def test_a_service_key_answers_alike_for_no_account_and_an_unverified_one(
    client, connected_car, owner
):
    UserFactory(email="new@example.test", verified=False)
    start = hour_from_now(days=2)
    answers = [
        client.post(
            car_url(connected_car, "service-keys"),
            {"email": email, "starts_at": iso(start), "ends_at": iso(start + H)},
            content_type=JSON,
            headers=auth(owner),
        )
        for email in ("new@example.test", "nobody@example.test")
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert not DigitalKey.objects.exists()


# --- The rate limit -------------------------------------------------------------------------


def test_too_many_unlocks_are_429_with_retry_after(client, active_booking, renter, settings):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (2, 300)
    key = trip_key(active_booking)
    headers = auth(renter)

    first = client.post(key_url(key, "unlock"), headers=headers)
    assert first.status_code == 202
    # Pressed again while it is on its way: the same command, and no cost.
    again = client.post(key_url(key, "unlock"), headers=headers)
    assert (again.status_code, again.json()) == (202, first.json())
    for _ in range(2):  # a Lock replaces the queued unlock, so the next is a new one
        assert client.post(key_url(key, "lock"), headers=headers).status_code == 202
        response = client.post(key_url(key, "unlock"), headers=headers)

    error = assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 300
    assert response["Retry-After"] in error["message"]
    # Locking is never rate-limited: a renter must always be able to lock up.
    assert client.post(key_url(key, "lock"), headers=headers).status_code == 202
    assert AuditEntry.objects.filter(key=key, code="rate_limited", allowed=False).count() == 1


# --- The owner ------------------------------------------------------------------------------


def test_owner_unlock_during_a_trip_needs_the_override_and_is_audited(
    client, active_booking, owner, renter, stranger
):
    car = active_booking.car
    headers = auth(owner)
    url = car_url(car, "unlock")

    error = assert_error(
        client.post(url, content_type=JSON, headers=headers), 409, "override_required"
    )
    assert "Rick holds the key now" in error["message"]
    no_reason = {"override": True, "reason": "  "}
    assert_error(
        client.post(url, no_reason, content_type=JSON, headers=headers), 409, "override_required"
    )
    assert_error(client.post(url, content_type=JSON, headers=auth(renter)), 404, "not_found")
    assert_error(client.post(url, content_type=JSON, headers=auth(stranger)), 404, "not_found")

    body = {"override": True, "reason": "Renter locked the keys of the house inside"}
    response = client.post(url, body, content_type=JSON, headers=headers)

    assert response.status_code == 202, response.content
    command = response.json()["command"]
    assert (command["action"], command["reason"]) == ("unlock", "owner")
    audit = client.get(car_url(car, "audit"), headers=headers).json()
    newest = audit["results"][0]
    assert (newest["action"], newest["allowed"], newest["code"], newest["via"]) == (
        "override_unlock",
        True,
        "ok",
        "api",
    )
    assert newest["detail"] == body["reason"]
    assert newest["command_id"] == command["id"]
    assert newest["actor"] == {"name": "Olga"}
    assert newest["key_id"] == str(trip_key(active_booking).public_id)
    refused = [e for e in audit["results"] if e["code"] == "override_required"]
    assert len(refused) == 2


@pytest.mark.parametrize("override", ["yes", "true", "1", 1, "on"])
def test_override_must_be_a_json_boolean(client, active_booking, owner, override):
    # "yes" used to count as a confirmed override: the car unlocked during someone's trip.
    car = active_booking.car
    body = {"override": override, "reason": "Renter locked the keys of the house inside"}

    response = client.post(car_url(car, "unlock"), body, content_type=JSON, headers=auth(owner))

    assert_error(response, 400, "invalid", "override")
    assert not VehicleCommand.objects.filter(car=car, reason="owner").exists()


def test_owner_unlocks_a_car_nobody_holds_without_override(client, connected_car, owner):
    # No body at all, as a bare `curl -X POST` sends it.
    response = client.generic("POST", car_url(connected_car, "unlock"), headers=auth(owner))
    assert response.status_code == 202, response.content


def test_owner_unlock_of_an_unconnected_car_is_409_not_connected(client, car, owner):
    assert_error(
        client.post(car_url(car, "unlock"), content_type=JSON, headers=auth(owner)),
        409,
        "not_connected",
    )


def test_audit_log_pages_newest_first_for_the_owner_only(
    client, confirmed_booking, owner, renter, stranger
):
    key = trip_key(confirmed_booking)
    renter_auth = auth(renter)
    for _ in range(3):  # before the window: three denied unlocks
        client.post(key_url(key, "unlock"), headers=renter_auth)
    headers = auth(owner)
    url = car_url(confirmed_booking.car, "audit")

    first = client.get(url, {"limit": 2}, headers=headers).json()
    rest = client.get(first["next"], headers=headers).json()

    assert first["count"] == 3
    entries = first["results"] + rest["results"]
    assert len(entries) == 3
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert {(e["action"], e["allowed"], e["code"]) for e in entries} == {
        ("unlock", False, "key_not_active")
    }
    assert rest["next"] is None
    assert rest["previous"] is not None
    assert_error(client.get(url, headers=renter_auth), 404, "not_found")
    assert_error(client.get(url, headers=auth(stranger)), 404, "not_found")
    assert_error(client.get(url, {"limit": 0}, headers=headers), 400, "invalid", "limit")


# --- Live status for key holders ------------------------------------------------------------


def test_car_status_for_the_holder_only_inside_the_window(
    client, confirmed_booking, renter, stranger, clock
):
    url = car_url(confirmed_booking.car, "status")
    renter_auth = auth(renter)

    assert_error(client.get(url, headers=renter_auth), 404, "not_found")  # before the window
    clock.move_to(confirmed_booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=confirmed_booking.pk)
    response = client.get(url, headers=renter_auth)
    assert response.status_code == 200, response.content
    assert response.json()["car_id"] == str(confirmed_booking.car.public_id)
    assert_error(client.get(url, headers=auth(stranger)), 404, "not_found")
    clock.move_to(confirmed_booking.ends_at + H, tick=False)  # past the grace
    assert_error(client.get(url, headers=renter_auth), 404, "not_found")


# --- Anything at all --------------------------------------------------------------------------

time_values = st.sampled_from(
    ["2030-01-01T10:00:00Z", "2030-01-01T10:00:00", "2030-01-01", "2030-02-30T10:00Z",
     "9999-12-31T23:59:59-14:00", "0001-01-01T00:00+14:00", "2030-01-01T10:00:00.1234567Z", "\x00"]
) | json_values  # fmt: skip
emails = st.sampled_from(["co@example.test", "tech@example.test", "", "x" * 300]) | json_values
key_bodies = st.fixed_dictionaries(
    {},
    optional={
        "email": emails,
        "starts_at": time_values,
        "ends_at": time_values,
        "note": json_values,
        "reason": json_values,
        "override": json_values,
    },
)
any_body = st.one_of(
    key_bodies.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=60)
)


# Fixtures are set up once per test, not per example: shares and service keys pile up across
# examples, which only widens what the endpoints see.


@FUZZ
@given(payload=any_body, action=st.sampled_from(["share", "revoke"]))
def test_key_posts_survive_any_body(
    client, active_booking, renter_auth, co_driver, payload, action
):
    url = key_url(trip_key(active_booking), action)
    assert_handled(client.post(url, payload, content_type=JSON, headers=renter_auth))


@FUZZ
@given(payload=any_body, path=st.sampled_from(["service-keys", "unlock"]))
def test_owner_posts_survive_any_body(client, connected_car, owner_auth, technician, payload, path):
    url = car_url(connected_car, path)
    assert_handled(client.post(url, payload, content_type=JSON, headers=owner_auth))


def test_times_in_answers_carry_an_offset(client, confirmed_booking, renter):
    data = client.get(key_url(trip_key(confirmed_booking)), headers=auth(renter)).json()
    for name in ("valid_from", "valid_until", "lock_until", "created_at"):
        parsed = datetime.datetime.fromisoformat(data[name])
        assert parsed.utcoffset() is not None, name
    assert timezone.now() < datetime.datetime.fromisoformat(data["valid_from"])
