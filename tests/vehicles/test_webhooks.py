"""The webhook receiver: VERIFY challenge, signatures, replays, and what events change."""

from __future__ import annotations

import json
import time
import uuid
from unittest.mock import patch

import pytest
import requests
from django.utils import timezone

from tests.factories import CarFactory
from vehicles import tasks
from vehicles.models import (
    CommandAction,
    CommandReason,
    CommandStatus,
    VehicleCommand,
    VehicleConnection,
    VehicleStatus,
    WebhookEvent,
)
from vehicles.webhooks import sign

URL = "/webhooks/smartcar/"
SECRET = "test-management-token"


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SMARTCAR_WEBHOOK_SECRET = SECRET


@pytest.fixture
def connection(db) -> VehicleConnection:
    return VehicleConnection.objects.create(car=CarFactory(), vehicle_id="veh-1")


def event(*, locked: bool = True, event_id: str | None = None, delivered_ms: int | None = None):
    now_ms = int(time.time() * 1000)
    return {
        "eventId": event_id or str(uuid.uuid4()),
        "eventType": "VEHICLE_STATE",
        "vehicleId": "veh-1",
        "data": {
            "signals": [
                {"code": "closure-islocked", "body": {"value": locked}},
                {
                    "code": "location-preciselocation",
                    "body": {"value": {"latitude": 52.1, "longitude": 5.1}},
                },
                {"code": "odometer-traveleddistance", "body": {"value": 1234.5, "unit": "km"}},
                {"code": "tractionbattery-stateofcharge", "body": {"value": 81, "unit": "percent"}},
            ]
        },
        "meta": {"version": "4.0", "deliveredAt": delivered_ms or now_ms},
    }


def deliver(client, payload, *, secret: str = SECRET, body: bytes | None = None, signature=None):
    raw = body if body is not None else json.dumps(payload, separators=(",", ":")).encode()
    headers = {"SC-Signature": signature if signature is not None else sign(secret, raw)}
    return client.post(URL, raw, content_type="application/json", headers=headers)


def test_verify_challenge_is_answered_with_its_hmac(client, db):
    body = {"eventId": "e", "eventType": "VERIFY", "data": {"challenge": "abc123"}}
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": sign(SECRET, b"abc123")}


def test_signed_event_updates_the_last_known_status(client, connection):
    response = deliver(client, event(locked=True))
    assert response.status_code == 200
    status = VehicleStatus.objects.get(car=connection.car)
    assert status.is_locked is True
    assert (status.latitude, status.longitude) == (52.1, 5.1)
    assert (status.odometer_km, status.battery_percent) == (1234.5, 81.0)


def test_tampered_body_is_rejected(client, connection):
    payload = event(locked=True)
    signature = sign(SECRET, json.dumps(payload).encode())
    payload["data"]["signals"][0]["body"]["value"] = False  # tampered after signing
    response = deliver(client, payload, signature=signature)
    assert response.status_code == 401
    assert not VehicleStatus.objects.exists()
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("signature", ["", "0" * 64, sign("another-secret", b"x")])
def test_missing_or_wrong_signature_is_rejected(client, connection, signature):
    assert deliver(client, event(), signature=signature).status_code == 401


def test_a_replayed_event_changes_nothing(client, connection):
    first = event(locked=False)
    assert deliver(client, first).status_code == 200
    assert deliver(client, event(locked=True)).status_code == 200
    # The first delivery again (a retry, or someone replaying it): acknowledged, not applied.
    assert deliver(client, first).status_code == 200
    assert VehicleStatus.objects.get(car=connection.car).is_locked is True
    assert WebhookEvent.objects.count() == 2


def test_an_old_delivery_is_refused_as_a_replay(client, connection):
    an_hour_ago = int((time.time() - 3600) * 1000)
    assert deliver(client, event(delivered_ms=an_hour_ago)).status_code == 400
    assert not VehicleStatus.objects.exists()


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"eventType": "VEHICLE_STATE"}']
)
def test_malformed_bodies_get_a_4xx(client, db, raw):
    response = deliver(client, None, body=raw)
    assert 400 <= response.status_code < 500


def test_get_is_not_allowed(client, db):
    assert client.get(URL).status_code == 405


def test_without_a_secret_the_endpoint_does_not_exist(client, db, settings):
    settings.SMARTCAR_WEBHOOK_SECRET = ""
    assert deliver(client, event()).status_code == 404


def test_event_for_an_unknown_vehicle_is_acknowledged_and_ignored(client, db):
    assert deliver(client, event()).status_code == 200
    assert not VehicleStatus.objects.exists()


def test_a_lock_event_prompts_a_read_instead_of_confirming_the_lock(
    client, connection, django_capture_on_commit_callbacks
):
    command = VehicleCommand.objects.create(
        car=connection.car,
        action=CommandAction.LOCK,
        reason=CommandReason.OWNER,
        status=CommandStatus.SUCCEEDED,
        answered_at=timezone.now(),
    )
    with (
        patch.object(tasks.confirm_vehicle_commands, "delay") as read,
        django_capture_on_commit_callbacks(execute=True),
    ):
        deliver(client, event(locked=True))
    command.refresh_from_db()
    assert command.confirmed_at is None  # only the car's own read confirms it
    read.assert_called_once_with(car_id=connection.car_id)


def test_an_event_with_nothing_to_confirm_prompts_no_read(
    client, connection, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        deliver(client, event(locked=True))
    assert queued == []


def test_vehicle_error_event_records_the_message(client, connection):
    payload = {
        "eventId": str(uuid.uuid4()),
        "eventType": "VEHICLE_ERROR",
        "vehicleId": "veh-1",
        "data": {"errors": [{"type": "VEHICLE_STATE", "code": "DOOR_OPEN",
                             "suggestedUserMessage": "Close the doors."}]},
    }  # fmt: skip
    assert deliver(client, payload).status_code == 200
    assert VehicleStatus.objects.get(car=connection.car).last_error == "Close the doors."


@pytest.mark.django_db(transaction=True)
def test_the_simulator_verifies_our_endpoint(sim, live_server, settings):
    """The simulator plays Smartcar's dashboard: it sends VERIFY and checks our answer."""
    settings.SMARTCAR_WEBHOOK_SECRET = "carshare-dev-management-token"
    sim.register_client(
        client_id=settings.SMARTCAR_CLIENT_ID,
        client_secret=settings.SMARTCAR_CLIENT_SECRET,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        management_token=settings.SMARTCAR_WEBHOOK_SECRET,
    )
    response = requests.post(
        f"{sim.url}/_sim/webhooks",
        json={"client_id": settings.SMARTCAR_CLIENT_ID, "callback_url": live_server.url + URL},
        timeout=20,
    )
    assert response.status_code == 201, response.text
    assert response.json()["verified"] is True
