"""Connections: encrypted tokens, refresh under a lock, falling ill, disconnecting.

The simulator plays Smartcar; spies wrap the real client calls to count them.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from tests.factories import CarFactory
from tests.simulation import SimControl, free_port
from tests.vehicles.test_smartcar import connect_vehicle
from vehicles import connect as connect_flow
from vehicles import crypto, tasks_connections, tasks_email
from vehicles.cloud import connections, provider
from vehicles.cloud.provider import Tokens
from vehicles.cloud.smartcar import SmartcarClient
from vehicles.models import Car, ConnectionStatus, VehicleConnection


def connect(
    car: Car, sim: SimControl, settings: Any, **vehicle: Any
) -> tuple[VehicleConnection, Tokens]:
    """The car connected to a new simulator vehicle, as the Connect callback would store it."""
    sim_car, tokens = connect_vehicle(sim, settings, **vehicle)
    cloud = SmartcarClient.from_settings()
    attributes = cloud.attributes(access_token=tokens.access_token, vehicle_id=sim_car["id"])
    connection = connect_flow.connection_create(
        car=car,
        tokens=tokens,
        vehicle_id=sim_car["id"],
        scopes=cloud.permissions(access_token=tokens.access_token, vehicle_id=sim_car["id"]),
        attributes=attributes,
        vin=sim_car["vin"],
        mode=cloud.mode,
    )
    return connection, tokens


def expire_access_soon(connection: VehicleConnection, minutes: float = 1) -> None:
    """Our record says the access token is about to die (the simulator's is still fine)."""
    VehicleConnection.objects.filter(pk=connection.pk).update(
        access_expires_at=timezone.now() + datetime.timedelta(minutes=minutes)
    )


def advance_sim_clock(sim: SimControl, seconds: float) -> None:
    response = sim.http.post(f"{sim.url}/_sim/clock", json={"advance_seconds": seconds}, timeout=10)
    assert response.status_code == 200, response.text


def enqueued(callbacks: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """The tasks that delay_on_commit() would send, from captured on-commit callbacks."""
    return [(callback.func.__self__.name, callback.keywords) for callback in callbacks]


@pytest.fixture
def refresh_calls() -> Iterator[list[str]]:
    """Counts SmartcarClient.refresh calls; each still goes to the simulator."""
    calls: list[str] = []
    real = SmartcarClient.refresh

    def spy(self: SmartcarClient, *, refresh_token: str) -> Tokens:
        calls.append(refresh_token)
        return real(self, refresh_token=refresh_token)

    with patch.object(SmartcarClient, "refresh", spy):
        yield calls


def raw_rows() -> str:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT * FROM vehicles_vehicleconnection")
        return repr(cursor.fetchall())


REVOKE = "vehicles.tasks_connections.revoke_vehicle_access"
EMAIL = "vehicles.tasks_connections.send_connection_unhealthy_email"
REFRESH_ONE = "vehicles.tasks_connections.refresh_connection_tokens"


# --- create -----------------------------------------------------------------------------------


def test_create_stores_what_the_cloud_reported(sim, settings, car):
    connection, _ = connect(car, sim, settings, make="BMW", model="i3", year=2019)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.HEALTHY
    assert (connection.reported_make, connection.reported_model, connection.reported_year) == (
        "BMW",
        "i3",
        2019,
    )
    assert len(connection.reported_vin) == 17
    assert "control_security" in connection.scopes
    assert connections.connection_live_for_car(car_id=car.pk) == connection


def test_raw_columns_never_hold_a_token(sim, settings, car, refresh_calls):
    connection, tokens = connect(car, sim, settings)
    expire_access_soon(connection)
    new_access = connections.connection_access_token(connection_id=connection.pk)
    assert len(refresh_calls) == 1

    rows = raw_rows()
    new = VehicleConnection.objects.get(pk=connection.pk)
    for secret in (tokens.access_token, tokens.refresh_token, new_access):
        assert secret not in rows
    assert crypto.decrypt_token(new.access_token_encrypted) == new_access
    assert crypto.decrypt_token(new.refresh_token_encrypted) not in (tokens.refresh_token, "")


def test_reconnecting_the_same_vehicle_forgets_old_tokens_without_revoking(
    sim, settings, car, django_capture_on_commit_callbacks
):
    first, _ = connect(car, sim, settings)
    query = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope="required:control_security read_vehicle_info",
        owner_email="owner@example.test",
        vehicle_ids=[first.vehicle_id],
    )
    tokens = SmartcarClient.from_settings().exchange_code(code=query["code"][0])
    with django_capture_on_commit_callbacks() as callbacks:
        second = connect_flow.connection_create(
            car=car,
            tokens=tokens,
            vehicle_id=first.vehicle_id,
            scopes=["control_security", "read_vehicle_info"],
            attributes=None,
            vin="",
            mode="simulator",
        )
    # DELETE /application would cut the new grant too: nothing may be enqueued.
    assert enqueued(callbacks) == []
    first.refresh_from_db()
    assert first.status == ConnectionStatus.DISCONNECTED
    assert first.access_token_encrypted == first.refresh_token_encrypted == ""
    assert connections.connection_live_for_car(car_id=car.pk) == second


def test_connecting_another_vehicle_revokes_the_previous_one(
    sim, settings, car, django_capture_on_commit_callbacks
):
    first, _ = connect(car, sim, settings)
    with django_capture_on_commit_callbacks() as callbacks:
        second, _ = connect(car, sim, settings, vin="WVWZZZ1KZ9W000002")
    assert enqueued(callbacks) == [(REVOKE, {"connection_id": first.pk})]
    assert connections.connection_live_for_car(car_id=car.pk) == second


def test_a_vehicle_serves_one_listing_only(sim, settings, car, owner):
    first, tokens = connect(car, sim, settings)
    other_car = CarFactory(owner=owner)
    with pytest.raises(connections.ConnectError, match="already connected"):
        connect_flow.connection_create(
            car=other_car,
            tokens=tokens,
            vehicle_id=first.vehicle_id,
            scopes=[],
            attributes=None,
            vin="",
            mode="simulator",
        )
    assert connections.connection_live_for_car(car_id=other_car.pk) is None


# --- access tokens and refresh ----------------------------------------------------------------


def test_a_fresh_access_token_is_returned_without_refreshing(sim, settings, car, refresh_calls):
    connection, tokens = connect(car, sim, settings)
    assert connections.connection_access_token(connection_id=connection.pk) == tokens.access_token
    assert refresh_calls == []


def test_the_row_a_caller_has_read_serves_the_token_without_reading_it_again(
    sim, settings, car, refresh_calls, django_assert_num_queries
):
    connection, tokens = connect(car, sim, settings)
    known = VehicleConnection.objects.get(pk=connection.pk)  # as a command's claim read it

    with django_assert_num_queries(0):
        token = connections.connection_access_token(connection_id=connection.pk, known=known)

    assert token == tokens.access_token
    assert refresh_calls == []


def test_a_known_row_whose_token_expires_soon_is_still_refreshed(sim, settings, car, refresh_calls):
    connection, tokens = connect(car, sim, settings)
    expire_access_soon(connection, minutes=4)
    known = VehicleConnection.objects.get(pk=connection.pk)

    access = connections.connection_access_token(connection_id=connection.pk, known=known)

    assert refresh_calls == [tokens.refresh_token]
    assert access != tokens.access_token


def test_an_expiring_access_token_is_refreshed_and_both_tokens_saved(
    sim, settings, car, refresh_calls
):
    connection, tokens = connect(car, sim, settings)
    expire_access_soon(connection, minutes=4)  # inside the 5-minute margin

    access = connections.connection_access_token(connection_id=connection.pk)

    assert refresh_calls == [tokens.refresh_token]
    assert access != tokens.access_token
    connection.refresh_from_db()
    assert connection.access_expires_at > timezone.now() + datetime.timedelta(hours=1)
    assert connection.refresh_expires_at > timezone.now() + datetime.timedelta(days=59)
    assert connection.refreshed_at is not None
    # The saved refresh token is the new one, and it works.
    next_refresh = crypto.decrypt_token(connection.refresh_token_encrypted)
    assert next_refresh != tokens.refresh_token
    cloud = SmartcarClient.from_settings()
    assert cloud.attributes(access_token=access, vehicle_id=connection.vehicle_id)
    assert cloud.refresh(refresh_token=next_refresh)


@pytest.mark.django_db(transaction=True)
def test_refresh_refuses_to_run_inside_a_transaction(sim, settings, car, refresh_calls):
    connection, _ = connect(car, sim, settings)
    expire_access_soon(connection)
    with pytest.raises(RuntimeError), transaction.atomic():
        connections.connection_access_token(connection_id=connection.pk)
    assert refresh_calls == []  # the refresh token was not spent


@pytest.mark.django_db(transaction=True)
def test_two_threads_spend_one_refresh_token_once(sim, settings, car):
    connection, tokens = connect(car, sim, settings)
    expire_access_soon(connection)
    calls: list[str] = []
    real = SmartcarClient.refresh

    def slow_spy(self: SmartcarClient, *, refresh_token: str) -> Tokens:
        calls.append(refresh_token)
        # Hold the refresh open so the other thread surely arrives while it is in flight.
        time.sleep(0.3)
        return real(self, refresh_token=refresh_token)

    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(connections.connection_access_token(connection_id=connection.pk))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            db_connection.close()  # each thread has its own database connection

    with patch.object(SmartcarClient, "refresh", slow_spy):
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert calls == [tokens.refresh_token]  # exactly one refresh
    assert len(results) == 2
    assert results[0] == results[1] != tokens.access_token
    stored = VehicleConnection.objects.get(pk=connection.pk)
    assert crypto.decrypt_token(stored.access_token_encrypted) == results[0]


def test_refused_refresh_marks_unhealthy_and_emails_the_owner_once(
    sim, settings, car, owner, refresh_calls, mailoutbox, django_capture_on_commit_callbacks
):
    connection, _ = connect(car, sim, settings)
    expire_access_soon(connection, minutes=-1)
    advance_sim_clock(sim, 61 * 86_400)  # the refresh token died unused

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(provider.AuthenticationFailed) as caught,
    ):
        connections.connection_access_token(connection_id=connection.pk)

    assert caught.value.user_message
    assert len(refresh_calls) == 1
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.UNHEALTHY
    assert "invalid_grant" in connection.status_reason
    assert enqueued(callbacks) == [(EMAIL, {"connection_id": connection.pk})]

    # The broker may deliver the email task twice: one email.
    tasks_email.send_connection_unhealthy_email(connection_id=connection.pk)
    tasks_email.send_connection_unhealthy_email(connection_id=connection.pk)
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == [owner.email]
    assert car.title in email.subject
    assert car.get_absolute_url() in email.body
    assert car.get_absolute_url() in email.alternatives[0][0]

    # A refused refresh token is never spent again, and the owner is not emailed again.
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(provider.AuthenticationFailed),
    ):
        connections.connection_access_token(connection_id=connection.pk)
    assert len(refresh_calls) == 1
    assert enqueued(callbacks) == []


def test_unhealthy_connection_still_serves_an_unexpired_access_token(sim, settings, car):
    connection, tokens = connect(car, sim, settings)
    connections.connection_mark_unhealthy(connection_id=connection.pk, reason="test")
    # A trip-end lock is worth sending while the access token lives.
    assert connections.connection_access_token(connection_id=connection.pk) == tokens.access_token


def test_marking_unhealthy_twice_emails_once(
    sim, settings, car, django_capture_on_commit_callbacks
):
    connection, _ = connect(car, sim, settings)
    with django_capture_on_commit_callbacks() as callbacks:
        connections.connection_mark_unhealthy(connection_id=connection.pk, reason="first")
        connections.connection_mark_unhealthy(connection_id=connection.pk, reason="second")
    assert enqueued(callbacks) == [(EMAIL, {"connection_id": connection.pk})]
    connection.refresh_from_db()
    assert connection.status_reason == "first"


def test_unreachable_token_endpoint_leaves_the_connection_healthy(
    sim, settings, car, django_capture_on_commit_callbacks
):
    connection, _ = connect(car, sim, settings)
    expire_access_soon(connection)
    settings.SMARTCAR_AUTH_ORIGIN = f"http://127.0.0.1:{free_port()}"
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(provider.TransientError),
    ):
        connections.connection_access_token(connection_id=connection.pk)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.HEALTHY
    assert enqueued(callbacks) == []


def test_our_bad_client_secret_does_not_blame_the_owner(
    sim, settings, car, django_capture_on_commit_callbacks
):
    connection, _ = connect(car, sim, settings)
    expire_access_soon(connection)
    settings.SMARTCAR_CLIENT_SECRET = "wrong"
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(provider.OAuthError) as caught,
    ):
        connections.connection_access_token(connection_id=connection.pk)
    assert caught.value.type == "invalid_client"
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.HEALTHY
    assert enqueued(callbacks) == []


# --- the aging sweep --------------------------------------------------------------------------


def test_sweep_refreshes_connections_nearing_60_days_once(
    sim, settings, car, owner, refresh_calls, django_capture_on_commit_callbacks
):
    aging, _ = connect(car, sim, settings)
    fresh, _ = connect(CarFactory(owner=owner), sim, settings, vin="WVWZZZ1KZ9W000003")
    VehicleConnection.objects.filter(pk=aging.pk).update(
        refresh_expires_at=timezone.now() + datetime.timedelta(days=5)
    )

    with django_capture_on_commit_callbacks() as callbacks:
        tasks_connections.refresh_aging_connections()
    assert enqueued(callbacks) == [(REFRESH_ONE, {"connection_id": aging.pk})]

    tasks_connections.refresh_connection_tokens(connection_id=aging.pk)
    tasks_connections.refresh_connection_tokens(connection_id=aging.pk)  # delivered twice
    assert len(refresh_calls) == 1
    aging.refresh_from_db()
    assert aging.refresh_expires_at > timezone.now() + datetime.timedelta(days=59)
    assert aging.status == ConnectionStatus.HEALTHY
    assert fresh.pk not in connections.connections_aging(now=timezone.now())


def test_sweep_marks_a_connection_it_cannot_refresh_unhealthy(
    sim, settings, car, django_capture_on_commit_callbacks
):
    connection, _ = connect(car, sim, settings)
    advance_sim_clock(sim, 61 * 86_400)
    VehicleConnection.objects.filter(pk=connection.pk).update(
        refresh_expires_at=timezone.now() - datetime.timedelta(days=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        tasks_connections.refresh_connection_tokens(connection_id=connection.pk)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.UNHEALTHY
    assert enqueued(callbacks) == [(EMAIL, {"connection_id": connection.pk})]


# --- disconnect -------------------------------------------------------------------------------


def test_disconnect_revokes_access_at_the_cloud(
    sim, settings, car, django_capture_on_commit_callbacks
):
    connection, tokens = connect(car, sim, settings)
    with django_capture_on_commit_callbacks() as callbacks:
        connect_flow.connection_disconnect(connection=connection)
    assert connection.status == ConnectionStatus.DISCONNECTED
    assert enqueued(callbacks) == [(REVOKE, {"connection_id": connection.pk})]
    assert connections.connection_live_for_car(car_id=car.pk) is None
    with pytest.raises(provider.AuthenticationFailed):
        connections.connection_access_token(connection_id=connection.pk)

    tasks_connections.revoke_vehicle_access(connection_id=connection.pk)
    tasks_connections.revoke_vehicle_access(connection_id=connection.pk)  # delivered twice

    with pytest.raises(provider.AuthenticationFailed):
        SmartcarClient.from_settings().attributes(
            access_token=tokens.access_token, vehicle_id=connection.vehicle_id
        )
    connection.refresh_from_db()
    assert connection.access_token_encrypted == connection.refresh_token_encrypted == ""


def test_revoking_refreshes_an_expired_access_token_first(
    sim, settings, car, refresh_calls, django_capture_on_commit_callbacks
):
    connection, tokens = connect(car, sim, settings)
    expire_access_soon(connection, minutes=-5)
    with django_capture_on_commit_callbacks():
        connect_flow.connection_disconnect(connection=connection)
    tasks_connections.revoke_vehicle_access(connection_id=connection.pk)
    assert len(refresh_calls) == 1
    cloud = SmartcarClient.from_settings()
    assert cloud.vehicle_ids(access_token=tokens.access_token) == []  # the car left the grant


def test_revoking_skips_delete_when_the_vehicle_was_reconnected(sim, settings, car, owner):
    connection, _ = connect(car, sim, settings)
    connect_flow.connection_disconnect(connection=connection)
    # Reconnected to another listing before the revoke task ran.
    query = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope="read_vehicle_info",
        owner_email="owner@example.test",
        vehicle_ids=[connection.vehicle_id],
    )
    cloud = SmartcarClient.from_settings()
    tokens = cloud.exchange_code(code=query["code"][0])
    connect_flow.connection_create(
        car=CarFactory(owner=owner),
        tokens=tokens,
        vehicle_id=connection.vehicle_id,
        scopes=["read_vehicle_info"],
        attributes=None,
        vin="",
        mode="simulator",
    )
    tasks_connections.revoke_vehicle_access(connection_id=connection.pk)
    assert cloud.vehicle_ids(access_token=tokens.access_token) == [connection.vehicle_id]
    connection.refresh_from_db()
    assert connection.refresh_token_encrypted == ""


def test_cloud_calls_go_to_the_vehicle_queue():
    from carshare.celery import app

    for name in (REVOKE, REFRESH_ONE):
        assert app.amqp.router.route({}, name)["queue"].name == "vehicle"
    assert app.amqp.router.route({}, EMAIL)["queue"].name == "default"
