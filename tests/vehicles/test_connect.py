"""Connecting a car through Smartcar Connect, against the real simulator; the owner's panels.

The browser's part of Connect (sign in, pick the car, Allow) is the simulator's headless consent
(`sim.consent`), which answers exactly where Connect would have redirected.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from keys import use
from tests.api.conftest import session_token
from tests.factories import CarFactory, UserFactory
from vehicles import commands
from vehicles.cloud import connections
from vehicles.cloud.provider import CONNECT_SCOPES
from vehicles.models import (
    Car,
    CommandStatus,
    ConnectionStatus,
    VehicleCommand,
    VehicleConnection,
    VehicleStatus,
)

pytestmark = pytest.mark.django_db

CALLBACK = reverse("vehicles:connect_callback")
HTMX = {"HX-Request": "true"}


def url(name: str, car: Car) -> str:
    return reverse(f"vehicles:{name}", kwargs={"public_id": car.public_id})


def start_connect(client: Client, car: Car) -> str:
    """Press "Connect this car"; returns the state sent to Connect."""
    response = client.post(url("car_connect", car))
    assert response.status_code == 302
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def consent(sim, settings, *, state: str, owner_email: str, **extra: Any) -> dict[str, str]:
    """The owner's answer in Connect: the query Connect redirects back with."""
    query = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope=" ".join(CONNECT_SCOPES),
        owner_email=owner_email,
        state=state,
        **extra,
    )
    return {name: values[0] for name, values in query.items()}


def callback(client: Client, params: dict[str, str]):
    return client.get(f"{CALLBACK}?{urlencode(params)}")


def flash(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def connect_car(client: Client, sim, settings, car: Car, **vehicle: Any) -> VehicleConnection:
    """The whole happy path: a matching car in the simulator, consent, callback."""
    twin = sim.add_vehicle(
        make=car.make,
        model=car.model,
        year=car.year,
        owner_email=car.owner.email,
        **({"vin": car.vin} if car.vin else {}),
        **vehicle,
    )
    state = start_connect(client, car)
    response = callback(client, consent(sim, settings, state=state, owner_email=car.owner.email))
    assert response.status_code == 302, response.content
    connection = connections.connection_live_for_car(car_id=car.pk)
    assert connection is not None, flash(response)
    assert connection.vehicle_id == twin["id"]
    return connection


# --- going to Connect -------------------------------------------------------------------------


def test_connect_sends_the_owner_to_connect_with_a_state(owner_client, car, sim, settings):
    response = owner_client.post(url("car_connect", car))

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == sim.url
    assert location.path == "/oauth/authorize"
    query = parse_qs(location.query)
    assert len(query["state"][0]) >= 32
    assert query["make"] == ["VOLKSWAGEN"]
    assert query["redirect_uri"] == [settings.SMARTCAR_REDIRECT_URI]
    assert "required:control_security" in query["scope"][0].split()


def test_connect_needs_post(owner_client, car, sim):
    assert owner_client.get(url("car_connect", car)).status_code == 405


def test_car_page_offers_connect_and_allows_connect_origin_in_form_action(owner_client, car, sim):
    response = owner_client.get(car.get_absolute_url())

    html = response.content.decode()
    assert "Not connected" in html
    assert "Connect this car" in html
    assert f'action="{url("car_connect", car)}"' in html
    # The form posts to us and is redirected to Connect: the CSP must allow that redirect.
    assert sim.url in response["Content-Security-Policy"].split("form-action")[1]


# --- the callback -----------------------------------------------------------------------------


def test_consent_connects_the_car(owner_client, owner, car, sim, settings):
    connection = connect_car(owner_client, sim, settings, car)

    assert connection.status == ConnectionStatus.HEALTHY
    assert {"control_security", "read_security", "read_vin"} <= set(connection.scopes)
    assert (connection.reported_make, connection.reported_model) == ("VOLKSWAGEN", "Golf")
    assert connection.mode == "simulator"
    page = owner_client.get(car.get_absolute_url()).content.decode()
    assert "Connected" in page
    assert "Lock and unlock the car" in page  # the granted scopes, in words
    assert "Lock now" in page
    assert "Disconnect" in page


def test_consent_message_on_the_car_page(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email)
    state = start_connect(owner_client, car)

    response = callback(
        owner_client, consent(sim, settings, state=state, owner_email=car.owner.email)
    )

    assert response["Location"] == car.get_absolute_url()
    assert any("Your car is connected" in message for message in flash(response))


def test_a_tesla_without_virtual_key_gets_the_link(owner_client, owner, sim, settings):
    car = CarFactory(owner=owner, make="TESLA", model="Model 3", year=2022, fuel_type="electric")
    twin = sim.add_vehicle(make="TESLA", model="Model 3", year=2022, owner_email=owner.email)
    sim.set_state(twin["id"], virtual_key=False)
    state = start_connect(owner_client, car)

    response = callback(owner_client, consent(sim, settings, state=state, owner_email=owner.email))

    assert any("virtual key" in m and "https://" in m for m in flash(response))
    assert connections.connection_live_for_car(car_id=car.pk) is not None


def test_a_state_that_was_never_issued_is_refused(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email)
    start_connect(owner_client, car)

    response = callback(
        owner_client, consent(sim, settings, state="forged-state", owner_email=car.owner.email)
    )

    assert response.status_code == 400
    assert "does not belong to a connection you started here" in response.content.decode()
    assert not VehicleConnection.objects.exists()


def test_a_callback_without_state_is_refused(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email)
    start_connect(owner_client, car)
    params = consent(sim, settings, state="", owner_email=car.owner.email)

    response = callback(owner_client, {"code": params["code"]})

    assert response.status_code == 400
    assert not VehicleConnection.objects.exists()


def test_a_replayed_callback_is_refused(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email)
    state = start_connect(owner_client, car)
    params = consent(sim, settings, state=state, owner_email=car.owner.email)
    assert callback(owner_client, params).status_code == 302
    first = VehicleConnection.objects.get()

    again = callback(owner_client, params)

    assert again.status_code == 400
    assert list(VehicleConnection.objects.all()) == [first]
    assert VehicleConnection.objects.get().status == ConnectionStatus.HEALTHY


def test_a_state_from_another_session_is_refused(owner, car, sim, settings):
    mine, theirs = Client(), Client()
    mine.force_login(owner)
    theirs.force_login(owner)  # same account, another browser: the state is per session
    sim.add_vehicle(owner_email=car.owner.email)
    state = start_connect(mine, car)

    response = callback(theirs, consent(sim, settings, state=state, owner_email=owner.email))

    assert response.status_code == 400
    assert not VehicleConnection.objects.exists()


def test_an_expired_state_is_refused(owner_client, car, sim, settings, time_machine):
    sim.add_vehicle(owner_email=car.owner.email)
    time_machine.move_to(datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC), tick=True)
    state = start_connect(owner_client, car)
    params = consent(sim, settings, state=state, owner_email=car.owner.email)
    time_machine.move_to(datetime.datetime(2026, 5, 1, 12, 16, tzinfo=datetime.UTC), tick=True)

    response = callback(owner_client, params)

    assert response.status_code == 400
    assert not VehicleConnection.objects.exists()


def test_the_callback_needs_sign_in(client):
    response = client.get(f"{CALLBACK}?code=x&state=y")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_denial_is_explained_and_stores_nothing(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email)
    state = start_connect(owner_client, car)

    response = callback(
        owner_client,
        consent(sim, settings, state=state, owner_email=car.owner.email, decision="deny"),
    )

    assert response["Location"] == car.get_absolute_url()
    assert any("You declined access in Connect" in m for m in flash(response))
    assert not VehicleConnection.objects.exists()


def test_incompatible_vehicle_is_named(owner_client, owner, sim, settings):
    # The simulator's Toyotas cannot lock remotely, and carshare requires control_security.
    car = CarFactory(owner=owner, make="TOYOTA", model="Corolla", year=2020)
    twin = sim.add_vehicle(make="TOYOTA", model="Corolla", year=2020, owner_email=owner.email)
    state = start_connect(owner_client, car)

    response = callback(owner_client, consent(sim, settings, state=state, owner_email=owner.email))

    [message] = flash(response)
    assert "Toyota Corolla 2020" in message
    assert twin["vin"] in message
    assert "remote locking and unlocking" in message
    assert not VehicleConnection.objects.exists()


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("invalid_subscription", "subscription is not active"),
        ("no_vehicles", "found no car in that account"),
        ("configuration_error", "Connect ran into a problem"),
        ("server_error", "temporary problem"),
        ("something_new", "did not work (something_new)"),
    ],
)
def test_other_connect_errors_are_explained(owner_client, car, sim, error, says):
    state = start_connect(owner_client, car)

    response = callback(
        owner_client, {"error": error, "error_description": "whatever", "state": state}
    )

    assert response["Location"] == car.get_absolute_url()
    assert any(says in message for message in flash(response))
    assert not VehicleConnection.objects.exists()


def test_no_vehicles_from_the_simulator(owner_client, car, sim, settings):
    state = start_connect(owner_client, car)  # the owner's account has no car in the cloud

    response = callback(
        owner_client, consent(sim, settings, state=state, owner_email="nobody@example.test")
    )

    assert any("found no car in that account" in m for m in flash(response))


@pytest.mark.parametrize(
    ("vehicle", "says"),
    [
        ({"year": 2019}, "the year is 2019, the listing says 2021"),
        ({"make": "BMW", "model": "i3"}, "the make is BMW, the listing says Volkswagen"),
        ({"model": "Passat"}, "the model is Passat, the listing says Golf"),
    ],
)
def test_a_vehicle_that_is_not_the_listing_is_refused(
    owner_client, car, sim, settings, vehicle, says
):
    sim.add_vehicle(owner_email=car.owner.email, **vehicle)
    state = start_connect(owner_client, car)

    response = callback(
        owner_client, consent(sim, settings, state=state, owner_email=car.owner.email)
    )

    [message] = flash(response)
    assert says in message
    assert "Nothing was connected" in message
    assert not VehicleConnection.objects.exists()


def test_a_different_vin_is_refused(owner_client, owner, sim, settings):
    car = CarFactory(owner=owner, vin="WVWZZZCDZMW000001")
    twin = sim.add_vehicle(owner_email=owner.email, vin="WVWZZZCDZMW000099")
    state = start_connect(owner_client, car)

    # Connect would only offer the listed VIN; the headless consent lets us grant another.
    response = callback(
        owner_client,
        consent(sim, settings, state=state, owner_email=owner.email, vehicle_ids=[twin["id"]]),
    )

    [message] = flash(response)
    assert "the VIN is WVWZZZCDZMW000099, the listing says WVWZZZCDZMW000001" in message
    assert not VehicleConnection.objects.exists()


def test_the_matching_vehicle_is_picked_among_several(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email, make="BMW", model="i3", year=2019)
    golf = sim.add_vehicle(owner_email=car.owner.email, model="Golf GTE")

    state = start_connect(owner_client, car)
    callback(owner_client, consent(sim, settings, state=state, owner_email=car.owner.email))

    assert VehicleConnection.objects.get().vehicle_id == golf["id"]


def test_make_ids_are_compared_without_punctuation(owner_client, owner, sim, settings):
    car = CarFactory(owner=owner, make="MERCEDES_BENZ", model="Vito Tourer", year=2021)
    sim.add_vehicle(make="MERCEDES-BENZ", model="Vito", year=2021, owner_email=owner.email)

    state = start_connect(owner_client, car)
    callback(owner_client, consent(sim, settings, state=state, owner_email=owner.email))

    assert connections.connection_live_for_car(car_id=car.pk) is not None


def test_a_code_used_twice_is_refused_by_the_cloud(owner_client, car, sim, settings):
    sim.add_vehicle(owner_email=car.owner.email)
    params = consent(
        sim, settings, state=start_connect(owner_client, car), owner_email=car.owner.email
    )
    callback(owner_client, params)
    # A new state, the spent code: the token endpoint refuses it.
    response = callback(owner_client, {**params, "state": start_connect(owner_client, car)})

    assert any("could not be used" in message for message in flash(response))
    assert VehicleConnection.objects.count() == 1


def test_another_owners_car_cannot_be_connected_with_my_state(owner_client, owner, sim, settings):
    """The state names the car; the callback still checks that the car is the owner's."""
    car = CarFactory(owner=owner)
    state = start_connect(owner_client, car)
    car.owner = UserFactory()
    car.save()
    sim.add_vehicle(owner_email=owner.email)

    response = callback(owner_client, consent(sim, settings, state=state, owner_email=owner.email))

    assert response.status_code == 404
    assert not VehicleConnection.objects.exists()


# --- disconnect and reconnect -----------------------------------------------------------------


def test_disconnect(owner_client, car, sim, settings, django_capture_on_commit_callbacks):
    connection = connect_car(owner_client, sim, settings, car)

    with django_capture_on_commit_callbacks() as enqueued:
        response = owner_client.post(url("car_disconnect", car), {"confirm": "1"})

    assert response["Location"] == car.get_absolute_url()
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.DISCONNECTED
    assert len(enqueued) == 1  # DELETE /application, in a worker
    page = owner_client.get(car.get_absolute_url()).content.decode()
    assert "Not connected" in page
    assert "Lock now" not in page


def test_disconnect_asks_first(owner_client, car, sim, settings):
    connection = connect_car(owner_client, sim, settings, car)
    page = owner_client.get(car.get_absolute_url()).content.decode()
    assert f'hx-post="{url("car_disconnect", car)}" hx-target="this"' in page

    for headers in ({}, {"HX-Request": "true"}):
        response = owner_client.post(url("car_disconnect", car), headers=headers)
        assert response.status_code == 200
        assert "Disconnect this car?" in response.content.decode()
        assert 'name="confirm" value="1"' in response.content.decode()
        connection.refresh_from_db()
        assert connection.status != ConnectionStatus.DISCONNECTED

    response = owner_client.post(url("car_disconnect", car), {"confirm": "1"})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.DISCONNECTED


def test_disconnect_when_not_connected_changes_nothing(owner_client, car, sim):
    response = owner_client.post(url("car_disconnect", car))
    assert response.status_code == 302
    assert any("not connected" in message for message in flash(response))


def test_reconnect_replaces_the_connection(owner_client, car, sim, settings):
    first = connect_car(owner_client, sim, settings, car)

    state = start_connect(owner_client, car)
    callback(owner_client, consent(sim, settings, state=state, owner_email=car.owner.email))

    first.refresh_from_db()
    assert first.status == ConnectionStatus.DISCONNECTED
    live = connections.connection_live_for_car(car_id=car.pk)
    assert live is not None
    assert live.pk != first.pk
    assert live.vehicle_id == first.vehicle_id


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("post", "car_connect"),
        ("post", "car_disconnect"),
        ("get", "car_status"),
        ("post", "car_lock"),
    ],
)
def test_stranger_gets_404(stranger_client, car, sim, method, name):
    response = getattr(stranger_client, method)(url(name, car))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("post", "car_connect"),
        ("post", "car_disconnect"),
        ("get", "car_status"),
        ("post", "car_lock"),
    ],
)
def test_anonymous_is_sent_to_sign_in(client, car, method, name):
    response = getattr(client, method)(url(name, car))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_stranger_gets_404_on_a_command(owner_client, stranger, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    command = commands.vehicle_command_request(car=car, action="lock", reason="owner", actor=None)
    stranger_client = Client()
    stranger_client.force_login(stranger)

    response = stranger_client.get(
        reverse("keys:key_command_status", args=[command.public_id]), headers=HTMX
    )

    assert response.status_code == 404


def test_visitors_do_not_find_a_car_before_it_is_connected(client, car, sim, settings):
    # Not public until it can be opened for a renter (tests/vehicles/test_public_cars.py).
    assert client.get(car.get_absolute_url()).status_code == 404


def test_visitors_see_a_connected_car_without_the_notice(client, owner_client, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    html = Client().get(car.get_absolute_url()).content.decode()
    assert "not connected to carshare yet" not in html
    assert "Lock now" not in html


# --- live status ------------------------------------------------------------------------------


def test_status_panel_polls_and_asks_for_a_refresh(
    owner_client, car, sim, settings, django_capture_on_commit_callbacks
):
    connect_car(owner_client, sim, settings, car)
    VehicleStatus.objects.filter(car=car).update(refresh_requested_at=None)

    with django_capture_on_commit_callbacks() as enqueued:
        response = owner_client.get(url("car_status", car), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="car-status"')
    assert 'hx-trigger="every 10s' in html
    assert "<html" not in html
    assert response["Vary"].count("HX-Request") == 1
    assert VehicleStatus.objects.get(car=car).refresh_requested_at is not None
    assert len(enqueued) == 1  # the read happens in the worker, never in this request


def test_status_panel_shows_the_last_known_status(owner_client, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    now = datetime.datetime.now(tz=datetime.UTC)
    VehicleStatus.objects.update_or_create(
        car=car,
        defaults={
            "is_locked": False,
            "doors_open": True,
            "latitude": 52.37,
            "longitude": 4.89,
            "odometer_km": 12345.6,
            "fuel_percent": 64.0,
            "data_age": now - datetime.timedelta(minutes=3),
            "fetched_at": now,
            "refresh_requested_at": now,
        },
    )

    html = owner_client.get(url("car_status", car), headers=HTMX).content.decode()

    assert "Unlocked" in html
    assert "Open" in html
    assert "12,346 km" in html
    assert "64%" in html
    assert "Data from 3\xa0minutes ago" in html


def test_status_without_htmx_is_the_page(owner_client, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    html = owner_client.get(url("car_status", car)).content.decode()
    assert "<html" in html
    assert 'id="car-status"' in html


# --- Lock now ---------------------------------------------------------------------------------


def test_lock_now_answers_with_a_polling_command(owner_client, owner, car, sim, settings):
    connect_car(owner_client, sim, settings, car)

    response = owner_client.post(url("car_lock", car), headers=HTMX)

    command = VehicleCommand.objects.get()
    assert (command.action, command.reason, command.actor) == ("lock", "owner", owner)
    html = response.content.decode()
    assert f'id="command-{command.public_id}"' in html
    assert reverse("keys:key_command_status", args=[command.public_id]) in html
    assert 'hx-trigger="every 2s"' in html
    assert "Queued" in html
    assert "car-command-changed" in json.loads(response["HX-Trigger"])


def test_lock_now_without_javascript_redirects(owner_client, car, sim, settings):
    connect_car(owner_client, sim, settings, car)

    response = owner_client.post(url("car_lock", car))

    assert response["Location"] == car.get_absolute_url()
    assert VehicleCommand.objects.count() == 1
    page = owner_client.get(car.get_absolute_url()).content.decode()
    assert 'aria-live="polite"' in page
    assert 'hx-trigger="every 2s"' in page  # the pending command is shown and followed
    # Its history is the keys panel's audit log, linked for a page without JavaScript.
    assert reverse("keys:car_keys", args=[car.public_id]) in page


def test_lock_now_on_an_unconnected_car_is_refused(owner_client, car, sim):
    response = owner_client.post(url("car_lock", car), headers=HTMX)

    assert response.status_code == 200
    assert "not connected" in response.content.decode()
    assert not VehicleCommand.objects.exists()


def test_a_finished_command_stops_polling(owner_client, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    command = commands.vehicle_command_request(car=car, action="lock", reason="owner", actor=None)
    VehicleCommand.objects.filter(pk=command.pk).update(
        status=CommandStatus.FAILED, error_message="A door is open."
    )
    status_url = reverse("keys:key_command_status", args=[command.public_id])

    response = owner_client.get(status_url, headers=HTMX)

    html = response.content.decode()
    assert "Failed" in html
    assert "A door is open." in html
    assert "every 2s" not in html
    assert "car-command-changed" in json.loads(response["HX-Trigger"])
    assert owner_client.get(status_url)["Location"] == car.get_absolute_url()


def test_the_audit_log_is_the_cars_history_of_commands(owner_client, owner, car, sim, settings):
    """One history on the car page: the owner's Lock now is in the audit log, with what became
    of its command (the vehicles app's own command table is gone)."""
    connect_car(owner_client, sim, settings, car)
    owner_client.post(url("car_lock", car), headers=HTMX)
    command = VehicleCommand.objects.get()
    VehicleCommand.objects.filter(pk=command.pk).update(
        status=CommandStatus.FAILED, error_message="A door is open."
    )

    response = owner_client.get(reverse("keys:car_audit", args=[car.public_id]), headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="car-audit"')
    assert "Lock" in html
    assert owner.name in html
    assert "Car: Failed (A door is open.)" in html
    assert 'hx-trigger="car-command-changed from:body"' in html  # follows every command
    page = owner_client.get(car.get_absolute_url()).content.decode()
    assert 'id="car-commands"' not in page


@pytest.mark.django_db(transaction=True)
def test_lock_now_locks_the_car_in_the_simulator(sim, settings, celery_worker_thread):
    """The whole path: button, command row, the `vehicle` worker, the simulated car."""
    owner = UserFactory(email="locker@example.test")
    car = CarFactory(owner=owner)
    client = Client()
    client.force_login(owner)
    connection = connect_car(client, sim, settings, car)
    sim.set_state(connection.vehicle_id, is_locked=False)

    client.post(url("car_lock", car), headers=HTMX)
    status_url = reverse("keys:key_command_status", args=[VehicleCommand.objects.get().public_id])
    deadline = time.monotonic() + 20
    while True:  # what the page's polling does, faster: a real worker is doing the work
        html = client.get(status_url, headers=HTMX).content.decode()
        if "every 2s" not in html or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    assert "Done" in html
    assert sim.vehicle(connection.vehicle_id)["is_locked"] is True


# --- the API ----------------------------------------------------------------------------------


def test_api_says_connected_to_everyone_and_shows_the_connection_to_the_owner(
    owner_client, owner, stranger, car, sim, settings
):
    connection = connect_car(owner_client, sim, settings, car)
    detail = f"/api/v1/cars/{car.public_id}"

    public = Client().get(detail).json()
    as_stranger = (
        Client().get(detail, headers={"X-Session-Token": session_token(Client(), stranger)}).json()
    )
    as_owner = (
        Client().get(detail, headers={"X-Session-Token": session_token(Client(), owner)}).json()
    )

    assert public["connected"] is True
    assert public["connection"] is None
    assert as_stranger["connection"] is None
    assert as_owner["connection"] == {
        "provider": "smartcar",
        "vehicle_id": connection.vehicle_id,
        "status": "healthy",
    }


def test_api_lists_connected_flags(owner_client, owner, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    other = CarFactory(owner=owner)
    token = session_token(Client(), owner)

    body = Client().get("/api/v1/cars", headers={"X-Session-Token": token}).json()

    by_id = {result["id"]: result for result in body["results"]}
    assert by_id[str(car.public_id)]["connected"] is True
    assert by_id[str(car.public_id)]["connection"]["status"] == "healthy"
    # The unconnected car is not public, so not in the search; its owner reads it directly.
    assert str(other.public_id) not in by_id
    mine = Client().get(f"/api/v1/cars/{other.public_id}", headers={"X-Session-Token": token})
    assert mine.json()["connected"] is False
    assert mine.json()["connection"] is None


def test_api_unhealthy_connection_is_not_connected(owner_client, owner, car, sim, settings):
    connection = connect_car(owner_client, sim, settings, car)
    connections.connection_mark_unhealthy(connection_id=connection.pk, reason="Refresh refused")

    body = (
        Client()
        .get(
            f"/api/v1/cars/{car.public_id}",
            headers={"X-Session-Token": session_token(Client(), owner)},
        )
        .json()
    )

    assert body["connected"] is False
    assert body["connection"]["status"] == "unhealthy"
    page = owner_client.get(car.get_absolute_url()).content.decode()
    assert "Needs reconnecting" in page
    assert "Refresh refused" in page
    assert "Reconnect" in page


def test_api_disconnected_car(owner_client, owner, car, sim, settings):
    connect_car(owner_client, sim, settings, car)
    owner_client.post(url("car_disconnect", car), {"confirm": "1"})

    body = (
        Client()
        .get(
            f"/api/v1/cars/{car.public_id}",
            headers={"X-Session-Token": session_token(Client(), owner)},
        )
        .json()
    )

    assert body["connected"] is False
    assert body["connection"] is None


@pytest.mark.parametrize("count", [1, 6])
def test_owner_page_query_count_does_not_grow_with_history(
    owner_client, owner, car, sim, settings, django_assert_num_queries, count
):
    connect_car(owner_client, sim, settings, car)
    for i in range(count):  # alternating: a press of the action already on its way joins it
        action = "unlock" if i % 2 else "lock"
        use.car_command_request(user=owner, action=action, car=car)
    owner_client.get(car.get_absolute_url())  # the status row now exists

    # session, user, car, photos, connection (page, refresh), status get_or_create, its claim,
    # the latest commands, status
    with django_assert_num_queries(10):
        owner_client.get(car.get_absolute_url())
    # The history, the keys panel's audit log, in a fixed number of queries too.
    audit_url = reverse("keys:car_audit", args=[car.public_id])
    owner_client.get(audit_url, headers=HTMX)
    with django_assert_num_queries(AUDIT_QUERIES):
        response = owner_client.get(audit_url, headers=HTMX)

    html = response.content.decode()
    assert html.count("Car: ") == count  # every command, with what became of it


# session, user, car, the key in use, service keys, every key, the audit log (its commands'
# status read inside it), the owner's own pending command
AUDIT_QUERIES = 8


def test_editing_a_car_on_its_page_keeps_its_digital_key_settings(owner_client, owner):
    """The edit form shows unlock at start, early access and the fallback: saving it without
    touching them keeps them (before, an unrendered checkbox saved as off)."""
    from vehicles import services as car_services
    from vehicles.selectors import car_fallback

    car = CarFactory(owner=owner, unlock_at_start=True, early_access_minutes=15)
    car_services.car_update(car=car, data={"fallback": "Key in the lockbox, code 1234"})
    page = owner_client.get(reverse("vehicles:car_edit", args=[car.public_id]))
    form = page.context["form"]
    data = {
        field.html_name: field.value()
        for field in form
        if field.value() is not None and field.value() is not False and field.name != "photos"
    }

    response = owner_client.post(reverse("vehicles:car_edit", args=[car.public_id]), data)

    assert response.status_code == 302, response.context["form"].errors
    car.refresh_from_db()
    assert (car.unlock_at_start, car.early_access_minutes) == (True, 15)
    assert car_fallback(car) == "Key in the lockbox, code 1234"
    assert 'name="unlock_at_start"' in page.content.decode()
