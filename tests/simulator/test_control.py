"""The /_sim/ control API: its fixed contract, its validation, and persistence across restarts."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.simulation import SimProcess
from tests.simulator.conftest import CLIENT_ID, REDIRECT_URI, assert_error


def test_health(sim):
    body = sim.get("/_sim/health").json()
    assert body["status"] == "ok"
    assert body["vehicles"] == 0


def test_create_vehicle_returns_full_state(sim):
    created = sim.vehicle(odometer_km=1234.5, fuel_percent=40, latency_ms=0)
    assert len(created["id"]) == 36
    assert len(created["vin"]) == 17
    assert created["vin"].startswith("0SC")
    assert created["make"] == "FORD"
    assert created["is_locked"] is True
    assert created["fuel_percent"] == 40
    assert created["odometer_km"] == 1234.5
    assert created["commands"] == []


def test_create_vehicle_with_vin_and_list_filters(sim):
    a = sim.vehicle(vin="1HGCM82633A004352", owner_email="A@Example.test")
    sim.vehicle(owner_email="b@example.test")
    by_owner = sim.get("/_sim/vehicles", params={"owner_email": "a@example.test"}).json()
    assert [v["id"] for v in by_owner["vehicles"]] == [a["id"]]
    by_vin = sim.get("/_sim/vehicles", params={"vin": "1HGCM82633A004352"}).json()
    assert [v["id"] for v in by_vin["vehicles"]] == [a["id"]]
    assert len(sim.get("/_sim/vehicles").json()["vehicles"]) == 2


def test_ev_gets_battery_not_fuel(sim):
    tesla = sim.vehicle(make="tesla", model="Model 3", battery_percent=55)
    assert tesla["make"] == "TESLA"
    assert tesla["powertrain"] == "BEV"
    assert tesla["fuel_percent"] is None
    assert tesla["battery_percent"] == 55


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"make": None}, "make"),
        ({"year": "2020"}, "year"),
        ({"latitude": 91}, "latitude"),
        ({"longitude": "east"}, "longitude"),
        ({"owner_email": "nope"}, "owner_email"),
        ({"vin": "SHORT"}, "vin"),
        ({"fuel_percent": 101}, "fuel_percent"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 1.5}, "latency_ms"),
        ({"is_locked": "yes"}, "is_locked"),
        ({"colour": "red"}, "colour"),
        ({"id": "not-a-uuid"}, "id"),
    ],
)
def test_create_vehicle_rejects_bad_input(sim, body, field):
    base = {
        "make": "FORD",
        "model": "Focus",
        "year": 2021,
        "owner_email": "o@example.test",
        "latitude": 1.0,
        "longitude": 2.0,
    }
    base.update(body)
    base = {k: v for k, v in base.items() if v is not None}  # None: leave the field out
    error = assert_error(sim.post("/_sim/vehicles", base), 400, "VALIDATION", "PARAMETER")
    assert error["detail"][0]["field"] == field


@pytest.mark.parametrize("raw", ["", "{", "[1,2]", '"text"', "null", "\xff"])
def test_bad_json_bodies_get_validation_errors(sim, car, raw):
    for path, method in [
        ("/_sim/vehicles", "post"),
        ("/_sim/clients", "post"),
        (f"/_sim/vehicles/{car['id']}", "patch"),
        (f"/_sim/vehicles/{car['id']}/faults", "post"),
        (f"/_sim/vehicles/{car['id']}/drive", "post"),
        ("/_sim/connect", "post"),
        ("/_sim/clock", "post"),
    ]:
        response = getattr(sim.http, method)(
            sim.url + path, data=raw.encode("latin-1"), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text)
        assert response.json()["type"] == "VALIDATION"


def test_duplicate_vin_rejected(sim):
    sim.vehicle(vin="1HGCM82633A004352")
    response = sim.post(
        "/_sim/vehicles",
        {
            "make": "FORD",
            "model": "F",
            "year": 2020,
            "owner_email": "x@example.test",
            "latitude": 0,
            "longitude": 0,
            "vin": "1HGCM82633A004352",
        },
    )
    assert_error(response, 400, "VALIDATION", "PARAMETER")


def test_patch_sets_state_and_validates(sim, car):
    response = sim.patch(
        f"/_sim/vehicles/{car['id']}",
        {"doors_open": True, "asleep": True, "latency_ms": 2500, "latitude": 48.1},
    )
    assert response.status_code == 200, response.text
    state = sim.state(car["id"])
    assert (state["doors_open"], state["asleep"], state["latency_ms"], state["latitude"]) == (
        True,
        True,
        2500,
        48.1,
    )
    bad = sim.patch(f"/_sim/vehicles/{car['id']}", {"asleep": True, "reachable": "no"})
    assert_error(bad, 400, "VALIDATION", "PARAMETER")
    assert sim.state(car["id"])["reachable"] is True  # nothing applied from a refused patch
    assert_error(
        sim.patch(f"/_sim/vehicles/{car['id']}", {"vin": "X"}), 400, "VALIDATION", "PARAMETER"
    )


def test_unknown_vehicle_is_404(sim):
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(sim.get(f"/_sim/vehicles/{missing}"), 404, "RESOURCE_NOT_FOUND", "PATH")
    assert_error(sim.patch(f"/_sim/vehicles/{missing}", {}), 404, "RESOURCE_NOT_FOUND", "PATH")
    assert_error(sim.get("/_sim/nothing-here"), 404, "RESOURCE_NOT_FOUND", "PATH")


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "", "client_secret": "s", "redirect_uris": ["http://x.test/cb"]},
        {"client_id": "c", "client_secret": "s", "redirect_uris": []},
        {"client_id": "c", "client_secret": "s", "redirect_uris": ["not a url"]},
        {"client_id": "c", "redirect_uris": ["http://x.test/cb"]},
        {"client_id": 5, "client_secret": "s", "redirect_uris": ["http://x.test/cb"]},
    ],
)
def test_client_registration_validates(sim, body):
    assert_error(sim.post("/_sim/clients", body), 400, "VALIDATION", "PARAMETER")


def test_client_registration_is_idempotent(sim):
    body = {"client_id": CLIENT_ID, "client_secret": "new", "redirect_uris": [REDIRECT_URI]}
    assert sim.post("/_sim/clients", body).status_code == 201
    clients = sim.get("/_sim/clients").json()["clients"]
    assert [c["client_secret"] for c in clients] == ["new"]


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "nowhere", "type": "SERVER", "code": "INTERNAL"},
        {"endpoint": "security", "type": "MADE_UP", "code": None},
        {"endpoint": "security", "type": "VEHICLE_STATE", "code": "NOT_IN_MOTION"},
        {"endpoint": "security", "type": "SERVER", "code": "INTERNAL", "count": 0},
        {"endpoint": "security", "type": "SERVER", "code": "INTERNAL", "status": 200},
        {"endpoint": "security", "type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": "1"},
    ],
)
def test_fault_validation(sim, car, body):
    response = sim.post(f"/_sim/vehicles/{car['id']}/faults", body)
    assert_error(response, 400, "VALIDATION", "PARAMETER")


def test_headless_connect_approve_and_deny(sim, car):
    body = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "read_odometer required:control_security",
        "state": "s1",
        "owner_email": "owner@example.test",
        "decision": "approve",
    }
    url = sim.post("/_sim/connect", body).json()["redirect_url"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    query = parse_qs(parts.query)
    assert query["state"] == ["s1"]
    assert len(query["code"][0]) == 36
    denied = sim.post("/_sim/connect", {**body, "decision": "deny"}).json()["redirect_url"]
    assert denied == (
        REDIRECT_URI
        + "?error=access_denied&error_description=User+denied+access+to+application.&state=s1"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "unknown"},
        {"redirect_uri": "http://evil.test/cb"},
        {"scope": "read_everything"},
        {"decision": "maybe"},
        {"owner_email": 12},
        {"vehicle_ids": ["00000000-0000-4000-8000-000000000000"]},
        {"vehicle_ids": "all"},
        {"mode": "production"},
    ],
)
def test_headless_connect_rejects_bad_input(sim, car, change):
    body = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "read_odometer",
        "owner_email": "owner@example.test",
        "decision": "approve",
        **change,
    }
    response = sim.post("/_sim/connect", body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "VALIDATION"


def test_reset_empties_everything(sim, car):
    assert sim.post("/_sim/reset").status_code == 200
    assert sim.get("/_sim/vehicles").json() == {"vehicles": []}
    assert sim.get("/_sim/clients").json() == {"clients": []}


def test_clock_moves_forward_only(sim):
    before = sim.get("/_sim/clock").json()["offset_s"]
    sim.advance(3600)
    assert sim.get("/_sim/clock").json()["offset_s"] == before + 3600
    assert_error(sim.post("/_sim/clock", {"advance_seconds": -5}), 400, "VALIDATION", "PARAMETER")
    assert_error(sim.post("/_sim/clock", {"advance_seconds": "5"}), 400, "VALIDATION", "PARAMETER")


def test_state_survives_a_restart(tmp_path):
    first = SimProcess(tmp_path / "persist.db")
    try:
        helper = requests.Session()
        helper.post(
            first.url + "/_sim/clients",
            json={"client_id": "c", "client_secret": "s", "redirect_uris": [REDIRECT_URI]},
            timeout=5,
        )
        created = helper.post(
            first.url + "/_sim/vehicles",
            json={
                "make": "FORD",
                "model": "Focus",
                "year": 2021,
                "owner_email": "p@example.test",
                "latitude": 1,
                "longitude": 2,
            },
            timeout=5,
        ).json()
        helper.patch(
            first.url + f"/_sim/vehicles/{created['id']}", json={"is_locked": False}, timeout=5
        )
    finally:
        first.stop()
    second = SimProcess(tmp_path / "persist.db")
    try:
        state = requests.get(second.url + f"/_sim/vehicles/{created['id']}", timeout=5).json()
        assert state["is_locked"] is False
        clients = requests.get(second.url + "/_sim/clients", timeout=5).json()["clients"]
        assert [c["client_id"] for c in clients] == ["c"]
    finally:
        second.stop()


def test_clients_from_environment(tmp_path):
    env = {
        "SIMULATOR_CLIENTS": json.dumps(
            [{"client_id": "app", "client_secret": "s", "redirect_uris": [REDIRECT_URI]}]
        )
    }
    process = SimProcess(tmp_path / "env.db", env=env)
    try:
        clients = requests.get(process.url + "/_sim/clients", timeout=5).json()["clients"]
        assert [c["client_id"] for c in clients] == ["app"]
        requests.post(process.url + "/_sim/reset", timeout=5)
        clients = requests.get(process.url + "/_sim/clients", timeout=5).json()["clients"]
        assert [c["client_id"] for c in clients] == ["app"]
    finally:
        process.stop()


def test_seed_file_is_applied_once(tmp_path):
    seed = tmp_path / "seed.json"
    vehicle = {
        "make": "NISSAN",
        "model": "Leaf",
        "year": 2020,
        "vin": "1N4AZ1CP5LC300001",
        "owner_email": "demo.owner@example.test",
        "latitude": 48.14,
        "longitude": 11.58,
        "battery_percent": 70,
    }
    client = {"client_id": "dev", "client_secret": "dev", "redirect_uris": [REDIRECT_URI]}
    seed.write_text(json.dumps({"clients": [client], "vehicles": [vehicle]}))
    for _ in range(2):  # the second start finds the car already there
        process = SimProcess(tmp_path / "seeded.db", args=["--seed", str(seed)])
        try:
            cars = requests.get(process.url + "/_sim/vehicles", timeout=5).json()["vehicles"]
            assert [(c["vin"], c["powertrain"]) for c in cars] == [("1N4AZ1CP5LC300001", "BEV")]
        finally:
            process.stop()


def test_default_latency_profile_from_environment(tmp_path):
    process = SimProcess(tmp_path / "profile.db", env={"SIMULATOR_LATENCY_PROFILE": "realistic"})
    try:
        body = {
            "make": "KIA",
            "model": "Niro",
            "year": 2022,
            "owner_email": "k@example.test",
            "latitude": 1,
            "longitude": 2,
        }
        created = requests.post(process.url + "/_sim/vehicles", json=body, timeout=5).json()
        assert created["latency_profile"] == "realistic"
        explicit = {**body, "vin": "KNDCE3LG0L5000001", "latency_profile": "instant"}
        assert (
            requests.post(process.url + "/_sim/vehicles", json=explicit, timeout=5).json()[
                "latency_profile"
            ]
            == "instant"
        )
    finally:
        process.stop()
