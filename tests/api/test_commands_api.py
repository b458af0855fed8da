"""The vehicle-commands API: lock a car, follow the command, read the live status."""

from __future__ import annotations

from unittest.mock import patch

import pytest

from tests.api.helpers import assert_envelope, assert_error, car_url
from vehicles import commands, tasks
from vehicles.models import CommandReason, VehicleCommand, VehicleStatus

# The cloud fixtures (to move to tests/conftest.py): a connected car and its simulator id.

COMMAND_FIELDS = {
    "id",
    "car_id",
    "action",
    "reason",
    "status",
    "is_pending",
    "attempts",
    "error",
    "requested_at",
    "sent_at",
    "answered_at",
    "confirmed_at",
}


def lock_url(car) -> str:
    return car_url(car.public_id) + "/lock"


def status_url(car) -> str:
    return car_url(car.public_id) + "/status"


def command_url(public_id) -> str:
    return f"/api/v1/commands/{public_id}"


def test_owner_locks_and_gets_202_with_the_queued_command(
    client, owner_auth, connected_car, django_capture_on_commit_callbacks
):
    with (
        patch.object(tasks.run_vehicle_command, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(lock_url(connected_car), headers=owner_auth)

    assert response.status_code == 202, response.content
    body = response.json()["command"]
    assert set(body) == COMMAND_FIELDS
    command = VehicleCommand.objects.get()
    assert body["id"] == str(command.public_id)
    assert body["car_id"] == str(connected_car.public_id)
    assert (body["action"], body["reason"], body["status"]) == ("lock", "owner", "queued")
    assert body["is_pending"] is True
    assert body["error"] is None
    assert body["sent_at"] is None
    apply_async.assert_called_once_with(kwargs={"command_id": command.pk}, countdown=None)


def test_lock_needs_a_session_token(client, connected_car):
    response = client.post(lock_url(connected_car))
    assert_error(response, 401, "not_authenticated")


def test_stranger_gets_404_for_lock(client, stranger_auth, connected_car):
    response = client.post(lock_url(connected_car), headers=stranger_auth)
    assert_error(response, 404, "not_found")
    assert not VehicleCommand.objects.exists()


def test_lock_of_an_unconnected_car_is_409_not_connected(client, owner_auth, car):
    response = client.post(lock_url(car), headers=owner_auth)
    error = assert_error(response, 409, "not_connected")
    assert "not connected" in error["message"]
    assert_envelope(response)


def test_command_detail_follows_progress(client, owner_auth, connected_car, sim_vehicle_id, sim):
    public_id = client.post(lock_url(connected_car), headers=owner_auth).json()["command"]["id"]
    command = VehicleCommand.objects.get(public_id=public_id)
    tasks.run_vehicle_command(command_id=command.pk)  # what the worker does

    response = client.get(command_url(public_id), headers=owner_auth)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == COMMAND_FIELDS
    assert body["status"] == "succeeded"
    assert body["is_pending"] is False
    assert body["sent_at"] and body["answered_at"] and body["confirmed_at"]  # noqa: PT018
    assert body["error"] is None


def test_command_detail_shows_the_vehicles_refusal(
    client, owner_auth, connected_car, sim_vehicle_id, sim
):
    sim.fault(sim_vehicle_id, endpoint="security", type="VEHICLE_STATE", code="DOOR_OPEN")
    public_id = client.post(lock_url(connected_car), headers=owner_auth).json()["command"]["id"]
    tasks.run_vehicle_command(command_id=VehicleCommand.objects.get(public_id=public_id).pk)

    body = client.get(command_url(public_id), headers=owner_auth).json()
    assert body["status"] == "failed"
    assert body["error"]["type"] == "VEHICLE_STATE"
    assert body["error"]["code"] == "DOOR_OPEN"
    assert body["error"]["message"].startswith("Your vehicle was unable to lock.")


def test_the_actor_sees_a_command_on_someone_elses_car(client, token_for, renter, connected_car):
    command = commands.vehicle_command_request(
        car=connected_car, action="unlock", reason=CommandReason.RENTER, actor=renter
    )
    response = client.get(command_url(command.public_id), headers=token_for(renter))
    assert response.status_code == 200
    assert response.json()["reason"] == "renter"


def test_stranger_gets_404_for_a_command(client, owner_auth, stranger_auth, connected_car):
    public_id = client.post(lock_url(connected_car), headers=owner_auth).json()["command"]["id"]
    assert_error(client.get(command_url(public_id), headers=stranger_auth), 404, "not_found")


@pytest.mark.parametrize("bad_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_unknown_command_is_404(client, owner_auth, bad_id):
    assert_error(client.get(command_url(bad_id), headers=owner_auth), 404, "not_found")


def test_status_answers_from_the_last_reading_and_asks_for_a_new_one(
    client, owner_auth, connected_car, sim_vehicle_id, sim, django_capture_on_commit_callbacks
):
    with (
        patch.object(tasks.refresh_vehicle_status, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.get(status_url(connected_car), headers=owner_auth)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refreshing"] is True
    assert body["is_locked"] is None  # nothing read yet
    delay.assert_called_once_with(car_id=connected_car.pk)

    tasks.refresh_vehicle_status(car_id=connected_car.pk)  # what the worker does
    with patch.object(tasks.refresh_vehicle_status, "delay") as delay:
        body = client.get(status_url(connected_car), headers=owner_auth).json()
    delay.assert_not_called()  # read a moment ago: the minimum interval holds
    assert body["refreshing"] is False
    assert body["is_locked"] is False
    assert body["latitude"] == pytest.approx(52.374, abs=0.01)
    assert body["odometer_km"] is not None
    assert body["fuel_percent"] is not None
    assert body["data_age"] is not None
    assert body["data_age_seconds"] >= 0
    assert body["fetched_at"] is not None
    assert body["last_error"] == ""
    assert VehicleStatus.objects.count() == 1


def test_status_of_an_unconnected_car_is_409(client, owner_auth, car):
    assert_error(client.get(status_url(car), headers=owner_auth), 409, "not_connected")


def test_stranger_gets_404_for_status(client, stranger_auth, connected_car):
    assert_error(client.get(status_url(connected_car), headers=stranger_auth), 404, "not_found")


def test_operations_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/cars/{car_id}/lock"]
    assert "get" in paths["/api/v1/commands/{command_id}"]
    assert "get" in paths["/api/v1/cars/{car_id}/status"]
