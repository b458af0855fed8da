"""The webhook receiver: VERIFY challenge, signatures, replays, and what events change."""

from __future__ import annotations

import datetime
import json
import secrets
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


def event(*, locked: bool = True, event_id: str | None = None, delivered_ms: object = None):
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


def verify(client, challenge: object):
    body = {"eventId": str(uuid.uuid4()), "eventType": "VERIFY", "data": {"challenge": challenge}}
    return client.post(URL, body, content_type="application/json")


@pytest.mark.parametrize(
    "challenge",
    [
        secrets.token_hex(16),  # what the simulator sends
        str(uuid.uuid4()),  # Smartcar's ids are UUIDs
        secrets.token_urlsafe(32),
        "A" * 256,
    ],
)
def test_verify_challenge_is_answered_with_its_hmac(client, db, challenge):
    response = verify(client, challenge)
    assert response.status_code == 200
    assert response.json() == {"challenge": sign(SECRET, challenge.encode())}


@pytest.mark.parametrize(
    "challenge",
    [
        json.dumps(event(), separators=(",", ":")),  # an event body: the signing oracle
        ' {"eventId":"x"}',
        "[1,2,3]",
        "two words and more",
        "short",
        "A" * 257,
        "",
        42,
        None,
    ],
)
def test_verify_refuses_a_challenge_not_shaped_like_smartcars(client, db, challenge):
    response = verify(client, challenge)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert SECRET not in response.content.decode()


def test_oversized_body_is_refused_before_parsing(client, connection, settings):
    settings.SMARTCAR_WEBHOOK_MAX_BYTES = 1024
    payload = event()
    payload["data"]["padding"] = "x" * 2000
    response = deliver(client, payload)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not WebhookEvent.objects.exists()
    assert not VehicleStatus.objects.exists()


def test_a_declared_length_over_the_cap_is_refused_unread(client, db, settings):
    settings.SMARTCAR_WEBHOOK_MAX_BYTES = 1024
    response = client.generic(
        "POST", URL, b"{}", content_type="application/json", CONTENT_LENGTH=str(10**9)
    )
    assert response.status_code == 413


def test_a_body_at_the_cap_is_accepted(client, connection, settings):
    raw = json.dumps(event(), separators=(",", ":"))
    settings.SMARTCAR_WEBHOOK_MAX_BYTES = len(raw)
    assert deliver(client, None, body=raw.encode()).status_code == 200


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


@pytest.mark.parametrize("signature", ["", "0" * 64, sign("another-secret", b"x"), "\u00e9" * 64])
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


def test_a_delivery_from_the_future_is_refused(client, connection, settings):
    later = int((time.time() + settings.SMARTCAR_WEBHOOK_CLOCK_SKEW + 60) * 1000)
    response = deliver(client, event(delivered_ms=later))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_time"
    assert not VehicleStatus.objects.exists()
    assert not WebhookEvent.objects.exists()


def test_a_clock_a_little_ahead_is_allowed(client, connection, settings):
    ahead = int((time.time() + settings.SMARTCAR_WEBHOOK_CLOCK_SKEW / 2) * 1000)
    assert deliver(client, event(delivered_ms=ahead)).status_code == 200


def test_delivered_at_as_an_iso_time_is_understood(client, connection):
    now = datetime.datetime.now(tz=datetime.UTC)
    iso = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert deliver(client, event(delivered_ms=iso)).status_code == 200
    old = (now - datetime.timedelta(hours=1)).isoformat()
    assert deliver(client, event(delivered_ms=old)).status_code == 400


@pytest.mark.parametrize("delivered_at", ["missing", "", "yesterday", True, [1], {"ms": 1}])
def test_an_event_without_a_usable_delivered_at_is_refused(client, connection, delivered_at):
    payload = event()
    if delivered_at == "missing":
        del payload["meta"]["deliveredAt"]
    else:
        payload["meta"]["deliveredAt"] = delivered_at
    response = deliver(client, payload)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_time"
    assert not WebhookEvent.objects.exists()


def test_an_event_without_meta_is_refused(client, connection):
    payload = event()
    del payload["meta"]
    assert deliver(client, payload).status_code == 400


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
        "meta": {"version": "4.0", "deliveredAt": int(time.time() * 1000)},
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


def test_the_simulators_deliveries_are_accepted(sim, settings, client, connected_car):
    """What the simulator sends for a lock (signed, deliveredAt stamped) is caught on its way
    and handed to our receiver as is: accepted, and the car shows locked."""
    from tests.simulator.test_webhooks import Receiver
    from vehicles.cloud import connections
    from vehicles.cloud.configured import get_provider

    connection = connections.connection_live_for_car(car_id=connected_car.pk)
    receiver = Receiver()
    receiver.amt = settings.SMARTCAR_WEBHOOK_SECRET
    try:
        created = requests.post(
            f"{sim.url}/_sim/webhooks",
            json={"client_id": settings.SMARTCAR_CLIENT_ID, "callback_url": receiver.url},
            timeout=20,
        )
        token = connections.connection_access_token(connection_id=connection.pk)
        subscribed = requests.post(
            f"{sim.url}/v2.0/vehicles/{connection.vehicle_id}/webhooks/{created.json()['id']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert subscribed.status_code == 200, subscribed.text
        get_provider().lock(access_token=token, vehicle_id=connection.vehicle_id)
        ((headers, body),) = receiver.wait_for(1)
    finally:
        receiver.close()

    response = deliver(client, None, body=body, signature=headers["SC-Signature"])
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.count() == 1
    assert VehicleStatus.objects.get(car=connected_car).is_locked is True
