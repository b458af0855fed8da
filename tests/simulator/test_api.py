"""The v2.0 API over HTTP: bodies, headers, units, paging, commands and the error catalogue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
from datetime import datetime

import aiohttp
import pytest

from tests.simulator.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, assert_error

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f-]{36}$")


def test_user_with_and_without_slash(sim, token):
    for path in ("/user", "/user/"):
        response = sim.api("GET", path, token)
        assert response.status_code == 200
        assert UUID_RE.match(response.json()["id"])
        assert UUID_RE.match(response.headers["SC-Request-Id"])


def test_vehicles_paging(sim):
    ids = [sim.vehicle(model=f"M{i}")["id"] for i in range(5)]
    token = sim.tokens()["access_token"]
    everything = sim.api("GET", "/vehicles", token).json()
    assert everything == {"paging": {"count": 5, "offset": 0}, "vehicles": ids}
    page = sim.api("GET", "/vehicles/", token, params={"limit": 2, "offset": 3}).json()
    assert page == {"paging": {"count": 5, "offset": 3}, "vehicles": ids[3:5]}
    beyond = sim.api("GET", "/vehicles", token, params={"offset": 10}).json()
    assert beyond["vehicles"] == []


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 51}, {"limit": "x"}, {"offset": -1}, {"offset": "1.5"}]
)
def test_vehicles_paging_validation(sim, token, params):
    response = sim.api("GET", "/vehicles", token, params=params)
    assert_error(response, 400, "VALIDATION", "PARAMETER")


def test_attributes_with_and_without_slash(sim, car, token):
    for path in (f"/vehicles/{car['id']}", f"/vehicles/{car['id']}/"):
        response = sim.api("GET", path, token)
        assert response.status_code == 200
        assert response.json() == {"id": car["id"], "make": "FORD", "model": "Focus", "year": 2021}
        assert "SC-Data-Age" not in response.headers


def test_reads_and_headers(sim, car, token):
    vid = car["id"]
    assert sim.api("GET", f"/vehicles/{vid}/vin", token).json() == {"vin": car["vin"]}
    location = sim.api("GET", f"/vehicles/{vid}/location", token)
    assert location.json() == {"latitude": 52.52, "longitude": 13.405}
    assert ISO_MS_Z.match(location.headers["SC-Data-Age"])
    assert ISO_MS_Z.match(location.headers["SC-Fetched-At"])
    odometer = sim.api("GET", f"/vehicles/{vid}/odometer", token)
    assert odometer.json() == {"distance": 10000.0}
    assert odometer.headers["SC-Unit-System"] == "metric"
    fuel = sim.api("GET", f"/vehicles/{vid}/fuel", token).json()
    assert fuel == {"amountRemaining": 40.0, "percentRemaining": 0.8, "range": 571.43}
    security = sim.api("GET", f"/vehicles/{vid}/security", token).json()
    assert set(security) == {"isLocked", "doors", "windows", "sunroof", "storage", "chargingPort"}
    assert security["isLocked"] is True
    assert {"type": "frontLeft", "status": "CLOSED"} in security["doors"]


def test_imperial_units(sim, car, token):
    headers = {"SC-Unit-System": "imperial"}
    odometer = sim.api("GET", f"/vehicles/{car['id']}/odometer", token, headers=dict(headers))
    assert odometer.headers["SC-Unit-System"] == "imperial"
    assert odometer.json() == {"distance": round(10000 / 1.609344, 2)}
    fuel = sim.api("GET", f"/vehicles/{car['id']}/fuel", token, headers=dict(headers)).json()
    assert fuel["amountRemaining"] == round(40 / 3.785411784, 2)
    assert fuel["range"] == round(571.4286 / 1.609344, 2)
    tires = sim.api("GET", f"/vehicles/{car['id']}/tires/pressure", token, headers=dict(headers))
    assert tires.json()["frontLeft"] == round(240 * 0.1450377377, 1)
    bad = sim.api("GET", f"/vehicles/{car['id']}/odometer", token, headers={"SC-Unit-System": "x"})
    assert_error(bad, 400, "VALIDATION", "PARAMETER")


def test_ev_battery_and_charge(sim):
    ev = sim.vehicle(make="TESLA", model="Model 3", battery_percent=50, is_plugged_in=True)
    token = sim.tokens()["access_token"]
    battery = sim.api("GET", f"/vehicles/{ev['id']}/battery", token).json()
    assert battery == {"percentRemaining": 0.5, "range": 220.59}
    charge = sim.api("GET", f"/vehicles/{ev['id']}/charge", token).json()
    assert charge == {"isPluggedIn": True, "state": "NOT_CHARGING"}
    fuel = sim.api("GET", f"/vehicles/{ev['id']}/fuel", token)
    assert_error(fuel, 501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE")


def test_lock_unlock_and_command_log(sim, car, token):
    path = f"/vehicles/{car['id']}/security"
    response = sim.api("POST", path, token, json={"action": "UNLOCK"})
    assert response.status_code == 200
    assert response.json() == {
        "message": "Successfully sent request to vehicle",
        "status": "success",
    }
    assert sim.api("GET", path, token).json()["isLocked"] is False
    assert sim.api("POST", path, token, json={"action": "LOCK"}).status_code == 200
    state = sim.state(car["id"])
    assert state["is_locked"] is True
    assert [(c["action"], c["result"]) for c in state["commands"]] == [
        ("UNLOCK", "success"),
        ("LOCK", "success"),
    ]
    assert all(
        ISO_MS_Z.match(c["received_at"]) and ISO_MS_Z.match(c["applied_at"])
        for c in state["commands"]
    )


def test_lock_takes_effect_only_after_latency(sim, car, token):
    sim.patch(f"/_sim/vehicles/{car['id']}", {"latency_ms": 1000})
    path = f"/vehicles/{car['id']}/security"
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(r=sim.api("POST", path, token, json={"action": "UNLOCK"}))
    )
    worker.start()
    deadline = 0
    while not sim.state(car["id"])["commands"] and deadline < 200:
        deadline += 1
    during = sim.state(car["id"])
    assert during["commands"][0]["result"] == "pending"
    assert during["commands"][0]["applied_at"] is None
    assert sim.api("GET", path, token).json()["isLocked"] is True  # not yet
    assert sim.get("/_sim/health").json()["in_flight_commands"] == 1
    worker.join(timeout=5)
    assert result["r"].status_code == 200
    after = sim.state(car["id"])
    assert after["is_locked"] is False
    assert after["commands"][0]["applied_at"] > after["commands"][0]["received_at"]


@pytest.mark.parametrize(
    ("patch", "action", "code"),
    [
        ({"doors_open": True}, "LOCK", "DOOR_OPEN"),
        ({"hood_open": True}, "LOCK", "HOOD_OPEN"),
        ({"trunk_open": True}, "LOCK", "TRUNK_OPEN"),
        ({"asleep": True}, "UNLOCK", "ASLEEP"),
        ({"reachable": False}, "UNLOCK", "UNREACHABLE"),
        ({"in_motion": True}, "UNLOCK", "IN_MOTION"),
        ({"remote_access_enabled": False}, "LOCK", "REMOTE_ACCESS_DISABLED"),
        ({"service_mode": True}, "LOCK", "VEHICLE_OFFLINE_FOR_SERVICE"),
        ({"ignition_on": True}, "LOCK", "IGNITION_ON"),
    ],
)
def test_vehicle_state_errors(sim, car, token, patch, action, code):
    sim.patch(f"/_sim/vehicles/{car['id']}", patch)
    response = sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": action})
    body = assert_error(response, 409, "VEHICLE_STATE", code)
    assert body["docURL"].endswith("#" + code.lower().replace("_", "-"))
    assert body["suggestedUserMessage"]
    assert sim.state(car["id"])["commands"][-1]["result"] == f"VEHICLE_STATE:{code}"


def test_door_open_body_is_exact(sim, car, token):
    sim.patch(f"/_sim/vehicles/{car['id']}", {"doors_open": True})
    body = sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "LOCK"}).json()
    assert body == {
        "type": "VEHICLE_STATE",
        "code": "DOOR_OPEN",
        "description": "The vehicle could not perform your request because one or more of its doors are open.",
        "docURL": "https://smartcar.com/docs/errors/api-errors/vehicle-state-errors#door-open",
        "statusCode": 409,
        "requestId": body["requestId"],
        "resolution": {"type": None},
        "suggestedUserMessage": "Your vehicle was unable to lock. Please ensure that all doors and the trunk are fully closed.",
    }


def test_unlock_with_door_open_is_fine(sim, car, token):
    sim.patch(f"/_sim/vehicles/{car['id']}", {"doors_open": True})
    assert sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "UNLOCK"}).ok


def test_make_without_lock_support(sim):
    toyota = sim.vehicle(make="TOYOTA", model="Corolla")
    token = sim.tokens()["access_token"]
    response = sim.api("POST", f"/vehicles/{toyota['id']}/security", token, json={"action": "LOCK"})
    assert_error(response, 501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE")


def test_tesla_needs_virtual_key(sim):
    tesla = sim.vehicle(make="TESLA", model="Model Y", virtual_key=False)
    token = sim.tokens()["access_token"]
    response = sim.api(
        "POST", f"/vehicles/{tesla['id']}/security", token, json={"action": "UNLOCK"}
    )
    assert_error(response, 400, "CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED")
    sim.patch(f"/_sim/vehicles/{tesla['id']}", {"virtual_key": True})
    assert sim.api("POST", f"/vehicles/{tesla['id']}/security", token, json={"action": "UNLOCK"}).ok


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ],
)
def test_authentication_errors(sim, car, headers):
    response = sim.api("GET", f"/vehicles/{car['id']}/odometer", None, headers=headers)
    body = assert_error(response, 401, "AUTHENTICATION", None)
    assert (
        body["docURL"] == "https://smartcar.com/docs/errors/api-errors/authentication-errors#null"
    )


def test_permission_errors(sim, car):
    token = sim.tokens(scope="read_odometer")["access_token"]
    response = sim.api("GET", f"/vehicles/{car['id']}/location", token)
    body = assert_error(response, 403, "PERMISSION", None)
    assert body["resolution"] == {"type": "REAUTHENTICATE"}
    lock = sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "LOCK"})
    assert_error(lock, 403, "PERMISSION", None)
    foreign = sim.vehicle(owner_email="someone-else@example.test")
    assert_error(
        sim.api("GET", f"/vehicles/{foreign['id']}/odometer", token), 403, "PERMISSION", None
    )


def test_malformed_vehicle_id(sim, token):
    assert_error(sim.api("GET", "/vehicles/bad_id/odometer", token), 400, "VALIDATION", "PARAMETER")


@pytest.mark.parametrize(
    "body", [{"action": "OPEN"}, {}, {"action": None}, ["LOCK"], {"action": "lock"}]
)
def test_command_body_validation(sim, car, token, body):
    response = sim.api("POST", f"/vehicles/{car['id']}/security", token, json=body)
    assert_error(response, 400, "VALIDATION", "PARAMETER")


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"LOCK"])
def test_command_bad_json(sim, car, token, raw):
    response = sim.api(
        "POST",
        f"/vehicles/{car['id']}/security",
        token,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "VALIDATION", None)


def test_unknown_paths_and_versions(sim, car, token):
    assert_error(
        sim.api("GET", f"/vehicles/{car['id']}/teleport", token), 404, "RESOURCE_NOT_FOUND", "PATH"
    )
    assert_error(
        sim.api("PUT", f"/vehicles/{car['id']}/security", token), 404, "RESOURCE_NOT_FOUND", "PATH"
    )
    assert_error(sim.api("GET", "/nothing", token), 404, "RESOURCE_NOT_FOUND", "PATH")
    bad_version = sim.http.get(
        f"{sim.url}/vX.Y/vehicles", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(bad_version, 404, "RESOURCE_NOT_FOUND", "VERSION")
    other_version = sim.http.get(
        f"{sim.url}/v99999999.99/user", headers={"Authorization": f"Bearer {token}"}
    )
    assert other_version.status_code == 200  # any numeric version means the latest


def test_rate_limit_per_vehicle(sim, car, token):
    sim.patch(f"/_sim/vehicles/{car['id']}", {"rate_limit_requests": 2, "rate_limit_window_s": 60})
    path = f"/vehicles/{car['id']}/odometer"
    assert sim.api("GET", path, token).ok
    assert sim.api("GET", path, token).ok
    limited = sim.api("GET", path, token)
    body = assert_error(limited, 429, "RATE_LIMIT", "VEHICLE")
    assert limited.headers["Retry-After"] == "30"
    assert body["resolution"] == {"type": "RETRY_LATER"}
    sim.advance(30)
    assert sim.api("GET", path, token).ok


@pytest.mark.parametrize(
    ("error_type", "code", "status"),
    [
        ("UPSTREAM", "NO_RESPONSE", 502),
        ("SERVER", "INTERNAL", 500),
        ("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE", 400),
        ("COMPATIBILITY", "SMARTCAR_NOT_CAPABLE", 501),
        ("RATE_LIMIT", "SMARTCAR_API", 429),
        ("BILLING", "VEHICLE_REQUEST_LIMIT", 430),
    ],
)
def test_injected_faults(sim, car, token, error_type, code, status):
    fault = {"endpoint": "location", "type": error_type, "code": code, "count": 2, "retry_after": 7}
    assert sim.post(f"/_sim/vehicles/{car['id']}/faults", fault).status_code == 201
    path = f"/vehicles/{car['id']}/location"
    for _ in range(2):
        response = sim.api("GET", path, token)
        assert_error(response, status, error_type, code)
        assert response.headers["Retry-After"] == "7"
    assert sim.api("GET", path, token).ok
    assert sim.api("GET", f"/vehicles/{car['id']}/odometer", token).ok


def test_fault_on_security_covers_commands(sim, car, token):
    sim.post(
        f"/_sim/vehicles/{car['id']}/faults",
        {"endpoint": "security", "type": "UPSTREAM", "code": "NO_RESPONSE"},
    )
    response = sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "UNLOCK"})
    assert_error(response, 502, "UPSTREAM", "NO_RESPONSE")
    assert sim.state(car["id"])["is_locked"] is True
    assert sim.state(car["id"])["commands"][-1]["result"] == "UPSTREAM:NO_RESPONSE"


def test_permissions_endpoint_and_paging(sim, car, token):
    body = sim.api("GET", f"/vehicles/{car['id']}/permissions", token).json()
    assert body["paging"] == {"count": 11, "offset": 0}
    assert "control_security" in body["permissions"]
    page = sim.api(
        "GET", f"/vehicles/{car['id']}/permissions", token, params={"limit": 2, "offset": 10}
    ).json()
    assert page == {"permissions": body["permissions"][10:], "paging": {"count": 11, "offset": 10}}


def test_disconnect(sim, car, token):
    other = sim.vehicle(model="Kuga")
    earlier = token  # an earlier Connect session of the same app
    token = sim.tokens()["access_token"]
    response = sim.api("DELETE", f"/vehicles/{car['id']}/application", token, json={})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    assert_error(
        sim.api("GET", f"/vehicles/{car['id']}/odometer", token), 401, "AUTHENTICATION", None
    )
    assert sim.api("GET", "/vehicles", token).json()["vehicles"] == [other["id"]]
    assert sim.api("GET", f"/vehicles/{other['id']}/odometer", token).ok
    assert_error(sim.api("GET", f"/vehicles/{car['id']}/vin", earlier), 401, "AUTHENTICATION", None)


def test_batch(sim, car, token):
    sim.post(
        f"/_sim/vehicles/{car['id']}/faults",
        {"endpoint": "location", "type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": 9},
    )
    response = sim.api(
        "POST",
        f"/vehicles/{car['id']}/batch",
        token,
        json={
            "requests": [
                {"path": "/odometer"},
                {"path": "/location"},
                {"path": "/"},
                {"path": "/nope"},
            ]
        },
        headers={"SC-Unit-System": "imperial"},
    )
    assert response.status_code == 200
    items = response.json()["responses"]
    assert [(i["path"], i["code"]) for i in items] == [
        ("/odometer", 200),
        ("/location", 429),
        ("/", 200),
        ("/nope", 404),
    ]
    assert all(isinstance(i["headers"], dict) for i in items)
    assert items[0]["headers"]["sc-unit-system"] == "imperial"
    assert items[1]["body"]["code"] == "VEHICLE"
    assert items[1]["headers"]["retry-after"] == "9"
    assert items[2]["body"]["model"] == "Focus"


@pytest.mark.parametrize(
    "body", [{}, {"requests": []}, {"requests": [{"path": 1}]}, {"requests": "x"}]
)
def test_batch_validation(sim, car, token, body):
    response = sim.api("POST", f"/vehicles/{car['id']}/batch", token, json=body)
    assert_error(response, 400, "VALIDATION", "PARAMETER")


def test_driving_moves_the_car(sim, car, token):
    before = sim.api("GET", f"/vehicles/{car['id']}/odometer", token).json()["distance"]
    moved = sim.post(f"/_sim/vehicles/{car['id']}/drive", {"distance_km": 35, "heading_deg": 90})
    assert moved.status_code == 200
    after = sim.api("GET", f"/vehicles/{car['id']}/odometer", token).json()["distance"]
    assert after == pytest.approx(before + 35)
    location = sim.api("GET", f"/vehicles/{car['id']}/location", token).json()
    assert location["longitude"] > car["longitude"]
    assert location["latitude"] == pytest.approx(car["latitude"], abs=1e-3)
    fuel = sim.api("GET", f"/vehicles/{car['id']}/fuel", token).json()
    assert fuel["percentRemaining"] == pytest.approx(0.8 - 35 * 0.07 / 50, abs=1e-3)


def test_in_motion_car_moves_with_the_clock(sim, car, token):
    sim.patch(
        f"/_sim/vehicles/{car['id']}", {"is_locked": False, "in_motion": True, "speed_kmh": 60}
    )
    sim.advance(1800)
    odometer = sim.api("GET", f"/vehicles/{car['id']}/odometer", token).json()["distance"]
    assert odometer == pytest.approx(10030, abs=0.5)
    sim.patch(f"/_sim/vehicles/{car['id']}", {"in_motion": False})
    sim.advance(1800)
    assert sim.api("GET", f"/vehicles/{car['id']}/odometer", token).json()[
        "distance"
    ] == pytest.approx(10030, abs=0.5)


def test_drive_validation(sim, car):
    for body in [
        {},
        {"distance_km": -1},
        {"distance_km": "5"},
        {"distance_km": 1, "heading_deg": 400},
    ]:
        assert_error(
            sim.post(f"/_sim/vehicles/{car['id']}/drive", body), 400, "VALIDATION", "PARAMETER"
        )


def test_charge_commands_and_charging_over_time(sim):
    ev = sim.vehicle(make="TESLA", model="Model 3", battery_percent=50)
    token = sim.tokens(scope="read_battery read_charge control_charge")["access_token"]
    path = f"/vehicles/{ev['id']}/charge"
    start = sim.api("POST", path, token, json={"action": "START"})
    assert_error(start, 409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    sim.patch(f"/_sim/vehicles/{ev['id']}", {"is_plugged_in": True})
    assert_error(
        sim.api("POST", path, token, json={"action": "STOP"}), 409, "VEHICLE_STATE", "NOT_CHARGING"
    )
    assert sim.api("POST", path, token, json={"action": "START"}).json()["status"] == "success"
    assert sim.api("GET", path, token).json() == {"isPluggedIn": True, "state": "CHARGING"}
    sim.advance(3600)  # 11 kW for an hour into 75 kWh: +14.7 %
    battery = sim.api("GET", f"/vehicles/{ev['id']}/battery", token).json()
    assert battery["percentRemaining"] == pytest.approx(0.6467, abs=1e-3)
    sim.advance(36000)
    token = sim.tokens(scope="read_battery read_charge control_charge")[
        "access_token"
    ]  # 2 h passed
    assert sim.api("GET", path, token).json()["state"] == "FULLY_CHARGED"
    assert sim.api("GET", f"/vehicles/{ev['id']}/battery", token).json()["percentRemaining"] == 0.8
    limit = sim.api("POST", f"{path}/limit", token, json={"limit": "0.9"})  # Node sends a string
    assert limit.status_code == 200
    assert sim.api("GET", f"{path}/limit", token).json() == {"limit": 0.9}
    for bad in [{"limit": 0.4}, {"limit": "x"}, {"limit": True}, {}]:
        assert_error(
            sim.api("POST", f"{path}/limit", token, json=bad), 400, "VALIDATION", "PARAMETER"
        )
    log = [(c["action"], c["result"]) for c in sim.state(ev["id"])["commands"]]
    assert log == [
        ("START_CHARGE", "VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED"),
        ("STOP_CHARGE", "VEHICLE_STATE:NOT_CHARGING"),
        ("START_CHARGE", "success"),
        ("SET_CHARGE_LIMIT", "success"),
    ]


def test_charge_on_a_petrol_car_is_not_capable(sim, car):
    token = sim.tokens(scope="control_charge")["access_token"]
    response = sim.api("POST", f"/vehicles/{car['id']}/charge", token, json={"action": "START"})
    assert_error(response, 501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE")


def test_data_age_follows_the_car(sim, car, token):
    sim.patch(f"/_sim/vehicles/{car['id']}", {"data_age_s": 72 * 60})
    response = sim.api("GET", f"/vehicles/{car['id']}/location", token)
    age = datetime.fromisoformat(response.headers["SC-Data-Age"].replace("Z", "+00:00"))
    fetched = datetime.fromisoformat(response.headers["SC-Fetched-At"].replace("Z", "+00:00"))
    assert (fetched - age).total_seconds() == pytest.approx(72 * 60, abs=0.01)


def test_many_commands_in_flight_do_not_block_each_other(sim):
    """300 commands of 500 ms each travel together: nothing is held across the latency wait."""
    cars = [sim.vehicle(model=f"C{i}", latency_ms=500, rate_limit_requests=None) for i in range(30)]
    token = sim.tokens(scope="control_security read_security")["access_token"]

    async def run() -> tuple[list[int], float, int]:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def command(i: int) -> int:
                url = f"{sim.url}/v2.0/vehicles/{cars[i % 30]['id']}/security"
                async with http.post(url, json={"action": "UNLOCK"}, headers=headers) as r:
                    await r.read()
                    return r.status

            started = time.perf_counter()
            statuses = await asyncio.gather(*(command(i) for i in range(300)))
            elapsed = time.perf_counter() - started
            async with http.get(f"{sim.url}/_sim/health") as r:
                peak = (await r.json())["max_in_flight_commands"]
        return statuses, elapsed, peak

    # Its own thread: Playwright's sync API may already run an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        statuses, elapsed, peak = pool.submit(asyncio.run, run()).result(timeout=60)
    assert statuses == [200] * 300
    assert elapsed < 10  # one after the other they would take 150 s
    assert peak >= 150  # loose: a loaded machine may still be opening sockets
    assert all(sim.state(c["id"])["is_locked"] is False for c in cars[:3])


def test_app_rate_limit_when_configured(sim, car):
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "app_rate_limit": {"requests": 2, "refill_per_minute": 2},
    }
    assert sim.post("/_sim/clients", client).status_code == 201
    token = sim.tokens()["access_token"]
    assert sim.api("GET", "/user", token).ok
    assert sim.api("GET", f"/vehicles/{car['id']}/odometer", token).ok
    limited = sim.api("GET", "/vehicles", token)
    body = assert_error(limited, 429, "RATE_LIMIT", "SMARTCAR_API")
    assert body["resolution"] == {"type": "RETRY_LATER"}
    assert limited.headers["Retry-After"] == "30"
    sim.advance(30)
    assert sim.api("GET", "/vehicles", token).ok
    bad = {**client, "app_rate_limit": {"requests": 0, "refill_per_minute": 2}}
    assert_error(sim.post("/_sim/clients", bad), 400, "VALIDATION", "PARAMETER")
