"""The official Smartcar Python SDK, unmodified, against the simulator (reference §7.1, §7.8).

The SDK reads SMARTCAR_*_ORIGIN once, when smartcar.config is imported, so the fixture sets the
environment first and then reloads that module; afterwards it puts the original values back.
"""

from __future__ import annotations

import importlib
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.simulator.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

ORIGIN_NAMES = ("API_ORIGIN", "AUTH_ORIGIN", "CONNECT_ORIGIN", "MANAGEMENT_API_ORIGIN")


@pytest.fixture
def smartcar(sim, monkeypatch):
    import smartcar as sdk
    import smartcar.config as config

    originals = {name: getattr(config, name) for name in ORIGIN_NAMES}
    monkeypatch.setenv("SMARTCAR_API_ORIGIN", sim.url)
    monkeypatch.setenv("SMARTCAR_AUTH_ORIGIN", sim.url + "/oauth/token")  # Python: full URL
    monkeypatch.setenv("SMARTCAR_CONNECT_ORIGIN", sim.url)
    monkeypatch.setenv("SMARTCAR_MANAGEMENT_API_ORIGIN", sim.url)
    importlib.reload(config)
    assert sim.url == config.API_ORIGIN
    yield sdk
    for name, value in originals.items():
        setattr(config, name, value)


@pytest.fixture
def client(smartcar):
    return smartcar.AuthClient(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        mode="simulated",
    )


@pytest.fixture
def fleet(sim):
    ford = sim.vehicle(make="FORD", model="Focus")
    tesla = sim.vehicle(make="TESLA", model="Model 3", battery_percent=64)
    return ford, tesla


@pytest.fixture
def access(sim, client, fleet):
    return client.exchange_code(sim.code())


def test_auth_url_opens_the_connect_page(sim, client, fleet):
    url = client.get_auth_url(
        ["read_odometer", "required:control_security"],
        {"state": "abc", "make_bypass": "FORD", "single_select": {"enabled": True}},
    )
    assert url.startswith(sim.url + "/oauth/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["read_odometer required:control_security"]
    page = sim.get(url[len(sim.url) :])
    assert page.status_code == 200
    assert "Sign in" in page.text


def test_exchange_code_and_refresh(sim, client, fleet):
    access = client.exchange_code(sim.code())
    assert access.token_type == "Bearer"
    assert access.expires_in == 7200
    refreshed = client.exchange_refresh_token(access.refresh_token)
    assert refreshed.access_token != access.access_token
    assert refreshed.refresh_token != access.refresh_token


def test_exchange_bad_code_raises(smartcar, client, fleet):
    with pytest.raises(smartcar.SmartcarException) as info:
        client.exchange_code("not-a-code")
    assert info.value.status_code == 400
    assert info.value.type == "invalid_grant"
    assert info.value.message == "Invalid code: not-a-code."


def test_user_vehicles_and_reads(smartcar, access, fleet):
    ford, tesla = fleet
    token = access.access_token
    user = smartcar.get_user(token)
    assert len(user.id) == 36
    assert user.meta.request_id
    listed = smartcar.get_vehicles(token, {"limit": 1, "offset": 1})
    assert listed.vehicles == [tesla["id"]]
    assert listed.paging.count == 2

    car = smartcar.Vehicle(ford["id"], token)
    attributes = car.attributes()
    assert (attributes.id, attributes.make, attributes.model, attributes.year) == (
        ford["id"],
        "FORD",
        "Focus",
        2021,
    )
    assert car.vin().vin == ford["vin"]
    location = car.location()
    assert (location.latitude, location.longitude) == (52.52, 13.405)
    assert location.meta.data_age.endswith("Z")
    assert location.meta.fetched_at.endswith("Z")
    odometer = car.odometer()
    assert odometer.distance == 10000.0
    assert odometer.meta.unit_system == "metric"
    fuel = car.fuel()
    assert fuel.percent_remaining == 0.8
    assert fuel.amount_remaining == 40.0
    permissions = car.permissions()
    assert "control_security" in permissions.permissions
    assert permissions.paging.count == len(permissions.permissions)

    ev = smartcar.Vehicle(tesla["id"], token, {"unit_system": "imperial"})
    battery = ev.battery()
    assert battery.percent_remaining == 0.64
    assert battery.meta.unit_system == "imperial"


def test_lock_unlock_and_lock_status(smartcar, sim, access, fleet):
    ford, _ = fleet
    car = smartcar.Vehicle(ford["id"], access.access_token)
    unlocked = car.unlock()
    assert (unlocked.status, unlocked.message) == (
        "success",
        "Successfully sent request to vehicle",
    )
    status = car.lock_status()
    assert status.is_locked is False
    assert {"type": "frontLeft", "status": "CLOSED"} in status.doors
    assert car.lock().status == "success"
    assert car.lock_status().is_locked is True
    assert [c["action"] for c in sim.state(ford["id"])["commands"]] == ["UNLOCK", "LOCK"]


def test_batch(smartcar, sim, access, fleet):
    ford, _ = fleet
    sim.post(
        f"/_sim/vehicles/{ford['id']}/faults",
        {"endpoint": "location", "type": "UPSTREAM", "code": "NO_RESPONSE"},
    )
    car = smartcar.Vehicle(ford["id"], access.access_token)
    result = car.batch(["/odometer", "/security", "/", "/location"])
    assert result.odometer().distance == 10000.0
    assert result.lock_status().is_locked is True
    assert result.attributes().make == "FORD"
    with pytest.raises(smartcar.SmartcarException) as info:
        result.location()
    assert (info.value.status_code, info.value.type, info.value.code) == (
        502,
        "UPSTREAM",
        "NO_RESPONSE",
    )


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": 42}, 429),
        ({"type": "VEHICLE_STATE", "code": "ASLEEP"}, 409),
        ({"type": "UPSTREAM", "code": "NO_RESPONSE"}, 502),
        ({"type": "SERVER", "code": "INTERNAL"}, 500),
        ({"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}, 501),
        ({"type": "CONNECTED_SERVICES_ACCOUNT", "code": "VIRTUAL_KEY_REQUIRED"}, 400),
    ],
)
def test_errors_surface_as_smartcar_exception(smartcar, sim, access, fleet, fault, status):
    ford, _ = fleet
    sim.post(f"/_sim/vehicles/{ford['id']}/faults", {"endpoint": "security", **fault})
    car = smartcar.Vehicle(ford["id"], access.access_token)
    with pytest.raises(smartcar.SmartcarException) as info:
        car.unlock()
    error = info.value
    assert (error.status_code, error.type, error.code) == (status, fault["type"], fault["code"])
    assert len(error.request_id) == 36
    assert error.description
    assert error.doc_url.startswith("https://smartcar.com/docs/errors/")
    if "retry_after" in fault:
        assert error.retry_after == "42"
        assert error.resolution == {"type": "RETRY_LATER", "url": None}


def test_state_error_from_the_car(smartcar, sim, access, fleet):
    ford, _ = fleet
    sim.patch(f"/_sim/vehicles/{ford['id']}", {"doors_open": True})
    with pytest.raises(smartcar.SmartcarException) as info:
        smartcar.Vehicle(ford["id"], access.access_token).lock()
    assert (info.value.status_code, info.value.type, info.value.code) == (
        409,
        "VEHICLE_STATE",
        "DOOR_OPEN",
    )
    assert info.value.suggested_user_message.startswith("Your vehicle was unable to lock.")


def test_permission_and_authentication_errors(smartcar, sim, client, fleet):
    ford, _ = fleet
    narrow = client.exchange_code(sim.code(scope="read_odometer"))
    with pytest.raises(smartcar.SmartcarException) as info:
        smartcar.Vehicle(ford["id"], narrow.access_token).location()
    assert (info.value.status_code, info.value.type, info.value.code) == (403, "PERMISSION", None)
    assert info.value.message.startswith("PERMISSION - ")
    with pytest.raises(smartcar.SmartcarException) as info:
        smartcar.get_user("bogus")
    assert (info.value.status_code, info.value.type) == (401, "AUTHENTICATION")


def test_disconnect(smartcar, access, fleet):
    ford, tesla = fleet
    car = smartcar.Vehicle(ford["id"], access.access_token)
    assert car.disconnect().status == "success"
    with pytest.raises(smartcar.SmartcarException) as info:
        car.odometer()
    assert info.value.status_code == 401
    assert smartcar.get_vehicles(access.access_token).vehicles == [tesla["id"]]


def test_charging_through_the_sdk(smartcar, sim, client, fleet):
    _, tesla = fleet
    sim.patch(f"/_sim/vehicles/{tesla['id']}", {"is_plugged_in": True})
    access = client.exchange_code(sim.code(scope="read_charge read_battery control_charge"))
    ev = smartcar.Vehicle(tesla["id"], access.access_token)
    assert ev.start_charge().status == "success"
    assert ev.charge().state == "CHARGING"
    assert ev.set_charge_limit(0.9).status == "success"
    assert ev.get_charge_limit().limit == 0.9
    assert ev.stop_charge().status == "success"
    assert ev.charge().is_plugged_in is True


def test_management_connections(smartcar, sim, access, fleet):
    ford, tesla = fleet
    amt = sim.get("/_sim/clients").json()["clients"][0]["management_token"]
    listed = smartcar.get_connections(amt)
    assert sorted(c.vehicle_id for c in listed.connections) == sorted([ford["id"], tesla["id"]])
    assert listed.paging.cursor is None
    first = smartcar.get_connections(amt, paging={"limit": 1})
    assert len(first.connections) == 1
    assert first.paging.cursor == "1"
    deleted = smartcar.delete_connections(amt, {"vehicle_id": ford["id"]})
    assert [c.vehicle_id for c in deleted.connections] == [ford["id"]]
    assert [c.vehicle_id for c in smartcar.get_connections(amt).connections] == [tesla["id"]]
    with pytest.raises(smartcar.SmartcarException) as info:
        smartcar.Vehicle(ford["id"], access.access_token).odometer()
    assert info.value.status_code == 401
    with pytest.raises(smartcar.SmartcarException) as info:
        smartcar.get_connections("wrong-token")
    assert (info.value.status_code, info.value.type) == (401, "AUTHENTICATION")
