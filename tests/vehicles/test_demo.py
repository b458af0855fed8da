"""The demo data of `make run`: every demo car ends up connected to its simulator twin."""

from __future__ import annotations

import io

import pytest
import requests
from django.core.management import call_command

from vehicles import connect, demo
from vehicles.models import ConnectionStatus, VehicleConnection

pytestmark = pytest.mark.django_db


def load(**options: object) -> str:
    out = io.StringIO()
    call_command("load_demo_data", stdout=out, **options)
    return out.getvalue()


def healthy_connections() -> dict[int, VehicleConnection]:
    return {c.car_id: c for c in VehicleConnection.objects.filter(status=ConnectionStatus.HEALTHY)}


def test_every_demo_car_is_connected(sim):
    output = load()

    cars = demo.demo_cars()
    assert len(cars) == len(demo.CARS)
    connected = healthy_connections()
    assert set(connected) == {car.pk for car in cars}
    for car in cars:
        twin = sim.vehicle(connected[car.pk].vehicle_id)
        assert (twin["make"], twin["model"], twin["year"]) == (car.make, car.model, car.year)
        assert twin["owner_email"] == car.owner.email
        if car.vin:
            assert twin["vin"] == car.vin == connected[car.pk].reported_vin
        assert {"control_security", "read_security"} <= set(connected[car.pk].scopes)
    assert f"Connected {len(cars)} demo cars" in output
    assert f"{len(cars)} of them connected" in output


def test_electric_demo_cars_report_a_battery_and_the_others_fuel(sim):
    load()
    for car in demo.demo_cars():
        twin = sim.vehicle(healthy_connections()[car.pk].vehicle_id)
        if car.fuel_type == "electric":
            assert twin["battery_percent"] is not None
            assert twin["fuel_percent"] is None
        else:
            assert twin["fuel_percent"] is not None


def test_a_second_run_connects_nothing_new(sim):
    load()
    before = healthy_connections()

    output = load()

    assert healthy_connections() == before
    assert VehicleConnection.objects.count() == len(before)
    assert "Connected" not in output.replace("of them connected", "")
    vehicles = requests.get(f"{sim.url}/_sim/vehicles", timeout=10).json()["vehicles"]
    assert len(vehicles) == len(demo.CARS)  # no second twin either


def test_a_wiped_simulator_gets_the_cars_connected_again(sim):
    load()
    before = healthy_connections()
    sim.reset()  # a new simulator state file: its vehicles, grants and clients are gone

    load()

    after = healthy_connections()
    assert set(after) == set(before)
    assert all(after[car_id].pk != before[car_id].pk for car_id in after)
    assert all(sim.vehicle(c.vehicle_id) for c in after.values())
    assert VehicleConnection.objects.filter(status=ConnectionStatus.DISCONNECTED).count() == len(
        before
    )


def test_a_demo_car_disconnected_by_its_owner_is_connected_again_on_the_next_run(sim):
    load()
    car = demo.demo_cars()[0]
    connect.connection_disconnect(connection=healthy_connections()[car.pk])

    load()

    assert car.pk in healthy_connections()
    assert len(healthy_connections()) == len(demo.CARS)


def test_the_apps_client_keeps_other_redirect_uris(sim, settings):
    sim.register_client(
        client_id=settings.SMARTCAR_CLIENT_ID,
        client_secret=settings.SMARTCAR_CLIENT_SECRET,
        redirect_uri="http://localhost:9999/connect/callback/",
    )

    load()

    clients = requests.get(f"{sim.url}/_sim/clients", timeout=10).json()["clients"]
    [client] = [c for c in clients if c["client_id"] == settings.SMARTCAR_CLIENT_ID]
    assert set(client["redirect_uris"]) == {
        "http://localhost:9999/connect/callback/",
        settings.SMARTCAR_REDIRECT_URI,
    }


def test_outside_simulator_mode_nothing_is_connected(sim, settings):
    settings.SMARTCAR_MODE = "live"

    output = load()

    assert "SMARTCAR_MODE is 'live'" in output
    assert not VehicleConnection.objects.exists()
    assert requests.get(f"{sim.url}/_sim/vehicles", timeout=10).json()["vehicles"] == []


def test_a_missing_simulator_is_a_note_not_a_crash(settings, db):
    settings.SMARTCAR_MODE = "simulator"
    settings.SMARTCAR_API_ORIGIN = "http://127.0.0.1:9"  # discard: nothing listens

    output = load()

    assert "simulator is not answering" in output
    assert not VehicleConnection.objects.exists()
    assert len(demo.demo_cars()) == len(demo.CARS)
