"""Vehicle-command services: rows, events, supersede, refusals, enqueue on commit, one in
flight per car, the access selector, status-refresh throttling and the admin actions."""

from __future__ import annotations

import datetime
import threading
from unittest.mock import patch

import pytest
from django import db
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from tests.factories import UserFactory
from vehicles import commands, connect, tasks
from vehicles import selectors as vehicle_selectors
from vehicles.cloud import connections, outbox, sending
from vehicles.models import (
    CommandAction,
    CommandReason,
    CommandStatus,
    VehicleCommand,
    VehicleStatus,
)

C = CommandStatus
# The cloud fixtures (to move to tests/conftest.py): a connected car and its simulator id.


def lock(car, *, reason=CommandReason.OWNER, actor=None, action=CommandAction.LOCK):
    if actor is None and reason in outbox.PERSON_REASONS:
        actor = car.owner
    return commands.vehicle_command_request(car=car, action=action, reason=reason, actor=actor)


def test_request_writes_a_queued_row_and_an_event(connected_car):
    command = lock(connected_car)

    command.refresh_from_db()
    assert (command.status, command.action, command.reason) == ("queued", "lock", "owner")
    assert command.actor == connected_car.owner
    assert command.attempts == 0
    (event,) = command.events.all()
    assert (event.old_status, event.new_status) == ("", "queued")
    assert connected_car.owner.email in event.note


def test_request_enqueues_the_run_on_commit(connected_car, django_capture_on_commit_callbacks):
    with (
        patch.object(tasks.run_vehicle_command, "apply_async") as apply_async,
    ):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            command = lock(connected_car)
        apply_async.assert_not_called()  # nothing reaches the broker before the commit
        assert len(callbacks) == 1
        callbacks[0]()  # the commit
        apply_async.assert_called_once_with(kwargs={"command_id": command.pk}, countdown=None)


def test_person_command_must_be_sent_within_a_minute(connected_car):
    command = lock(connected_car, reason=CommandReason.RENTER, actor=UserFactory())
    assert command.send_by == pytest.approx(
        command.requested_at + outbox.PERSON_SEND_WINDOW, abs=datetime.timedelta(seconds=1)
    )


def test_system_command_has_no_send_window(connected_car):
    command = lock(connected_car, reason=CommandReason.TRIP_END, actor=None)
    assert command.send_by is None
    assert command.actor is None
    assert "system" in command.events.get().note


def test_newer_command_supersedes_the_queued_one(connected_car):
    first = lock(connected_car, action=CommandAction.UNLOCK)
    second = lock(connected_car)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == C.SUPERSEDED
    assert second.status == C.QUEUED
    last = first.events.order_by("pk").last()
    assert (last.old_status, last.new_status) == ("queued", "superseded")
    assert str(second.public_id) in last.note


def test_a_sent_command_is_not_superseded(connected_car):
    first = lock(connected_car)
    assert sending.command_claim(command_id=first.pk) is not None  # a worker has it in flight
    lock(connected_car, action=CommandAction.UNLOCK)

    first.refresh_from_db()
    assert first.status == C.SENT


def test_refused_when_the_car_is_not_connected(car):
    with pytest.raises(commands.CommandRefused) as refusal:
        lock(car)
    assert refusal.value.code == "not_connected"
    assert "not connected" in str(refusal.value)
    assert not VehicleCommand.objects.exists()


def test_refused_for_a_person_when_the_connection_needs_renewing(connected_car):
    connection = connections.connection_live_for_car(car_id=connected_car.pk)
    connections.connection_mark_unhealthy(connection_id=connection.pk, reason="test")

    with pytest.raises(commands.CommandRefused) as refusal:
        lock(connected_car)
    assert refusal.value.code == "needs_reconnecting"
    # The trip clock's lock is still recorded: its failure must stay on record.
    system = lock(connected_car, reason=CommandReason.TRIP_END, actor=None)
    assert system.status == C.QUEUED


def test_unknown_action_is_a_programming_error(connected_car):
    with pytest.raises(ValueError, match="Unknown command"):
        lock(connected_car, action="honk")


@pytest.mark.django_db(transaction=True)  # a test case's own transaction would hide the check
def test_move_needs_a_transaction(connected_car):
    command = lock(connected_car)
    with pytest.raises(RuntimeError, match="transaction"):
        outbox.command_move(command, C.SENT)


def test_move_outside_the_table_does_nothing(connected_car):
    command = lock(connected_car)
    with transaction.atomic():
        assert outbox.command_move(command, C.SUCCEEDED) is None  # queued → succeeded
    command.refresh_from_db()
    assert command.status == C.QUEUED
    assert command.events.count() == 1


def test_claim_takes_the_command_once(connected_car, sim_vehicle_id):
    command = lock(connected_car)

    claim = sending.command_claim(command_id=command.pk)
    assert claim is not None
    assert (claim.attempt, claim.action, claim.vehicle_id) == (1, "lock", sim_vehicle_id)
    assert sending.command_claim(command_id=command.pk) is None  # a redelivered message
    command.refresh_from_db()
    assert (command.status, command.attempts) == (C.SENT, 1)
    assert command.sent_at is not None


def test_a_claim_is_one_transaction_and_carries_the_connection_it_read(
    connected_car, django_assert_max_num_queries
):
    command = lock(connected_car)

    # BEGIN, the command under its row lock, the live connection, the event, the move, COMMIT:
    # at a thousand trips starting in one second this runs a thousand times.
    with django_assert_max_num_queries(6):
        claim = sending.command_claim(command_id=command.pk)

    assert claim is not None
    live = connections.connection_live_for_car(car_id=connected_car.pk)
    assert claim.connection is not None
    assert claim.connection.pk == live.pk
    assert claim.connection.access_token_encrypted == live.access_token_encrypted


def test_one_command_in_flight_per_car(connected_car, django_capture_on_commit_callbacks):
    first = lock(connected_car, reason=CommandReason.TRIP_START, actor=None)
    assert sending.command_claim(command_id=first.pk) is not None
    second = lock(connected_car, action=CommandAction.UNLOCK)  # a lock would join the first

    with (
        patch.object(tasks.run_vehicle_command, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.run_vehicle_command(command_id=second.pk)  # busy: it tries again shortly

    second.refresh_from_db()
    assert second.status == C.QUEUED
    assert second.attempts == 0
    assert second.next_attempt_at > second.requested_at
    (call,) = apply_async.call_args_list
    assert call.kwargs["kwargs"] == {"command_id": second.pk}
    assert 0 < call.kwargs["countdown"] <= sending.BUSY_RETRY_S


def test_claim_fails_the_command_when_the_car_was_disconnected(connected_car):
    command = lock(connected_car)
    connect.connection_disconnect(
        connection=connections.connection_live_for_car(car_id=connected_car.pk)
    )

    assert sending.command_claim(command_id=command.pk) is None
    command.refresh_from_db()
    assert (command.status, command.error_type) == (C.FAILED, "NOT_CONNECTED")


# --- Access -----------------------------------------------------------------------------------


def test_owner_and_actor_see_the_command_and_a_stranger_gets_404(connected_car, renter, stranger):
    command = lock(connected_car, reason=CommandReason.RENTER, actor=renter)

    assert vehicle_selectors.command_for_owner(
        user=connected_car.owner, public_id=command.public_id
    )
    assert vehicle_selectors.command_for_owner(user=renter, public_id=command.public_id)
    with pytest.raises(Http404):
        vehicle_selectors.command_for_owner(user=stranger, public_id=command.public_id)


def test_commands_for_car_newest_first(connected_car):
    older = lock(connected_car)
    newer = lock(connected_car, action=CommandAction.UNLOCK)
    assert list(vehicle_selectors.commands_for_car(car_id=connected_car.pk)) == [newer, older]


# --- Live status refresh ----------------------------------------------------------------------


def test_status_refresh_at_most_once_per_interval(
    connected_car, settings, time_machine, django_capture_on_commit_callbacks
):
    settings.VEHICLE_STATUS_MIN_INTERVAL = 60
    time_machine.move_to(timezone.now(), tick=True)
    with (
        patch.object(tasks.refresh_vehicle_status, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        commands.vehicle_status_request_refresh(car_id=connected_car.pk)
        commands.vehicle_status_request_refresh(car_id=connected_car.pk)
        time_machine.shift(datetime.timedelta(seconds=30))
        commands.vehicle_status_request_refresh(car_id=connected_car.pk)
    delay.assert_called_once_with(car_id=connected_car.pk)

    time_machine.shift(datetime.timedelta(seconds=31))
    with (
        patch.object(tasks.refresh_vehicle_status, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        commands.vehicle_status_request_refresh(car_id=connected_car.pk)
    delay.assert_called_once_with(car_id=connected_car.pk)
    assert VehicleStatus.objects.get(car=connected_car).refresh_requested_at is not None


def test_status_refresh_needs_a_connection(car, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        commands.vehicle_status_request_refresh(car_id=car.pk)
    assert callbacks == []
    assert not VehicleStatus.objects.exists()


# --- Admin ------------------------------------------------------------------------------------


def test_admin_force_lock_goes_through_the_service(admin_client, admin, connected_car):
    response = admin_client.post(
        "/admin/vehicles/car/",
        {"action": "force_lock", "_selected_action": [connected_car.pk]},
        follow=True,
    )
    assert response.status_code == 200
    command = VehicleCommand.objects.get(car=connected_car)
    assert (command.action, command.reason, command.actor) == ("lock", "admin", admin)
    assert command.send_by is not None  # a person asked: the send window applies
    assert b"Lock queued" in response.content


def test_admin_force_lock_from_a_connection(admin_client, connected_car):
    connection = connections.connection_live_for_car(car_id=connected_car.pk)
    admin_client.post(
        "/admin/vehicles/vehicleconnection/",
        {"action": "force_lock", "_selected_action": [connection.pk]},
    )
    assert VehicleCommand.objects.get(car=connected_car).reason == "admin"


def test_admin_force_lock_reports_a_refusal(admin_client, car):
    response = admin_client.post(
        "/admin/vehicles/car/",
        {"action": "force_lock", "_selected_action": [car.pk]},
        follow=True,
    )
    assert b"not connected" in response.content
    assert not VehicleCommand.objects.exists()


def test_admin_connection_page_never_shows_tokens(admin_client, connected_car):
    connection = connections.connection_live_for_car(car_id=connected_car.pk)
    token = connections.connection_access_token(connection_id=connection.pk)
    for url in (
        "/admin/vehicles/vehicleconnection/",
        f"/admin/vehicles/vehicleconnection/{connection.pk}/change/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert token.encode() not in response.content
        assert connection.access_token_encrypted.encode() not in response.content
        assert b"token_encrypted" not in response.content


def test_admin_command_page_shows_events(admin_client, connected_car):
    command = lock(connected_car)
    response = admin_client.get(f"/admin/vehicles/vehiclecommand/{command.pk}/change/")
    assert response.status_code == 200
    assert b"queued" in response.content
    assert admin_client.get("/admin/vehicles/vehiclecommand/?status=queued").status_code == 200


# --- Races --------------------------------------------------------------------------------------


def in_threads(*calls):
    """Run the calls at once, each in its own thread (and database connection)."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=5)
            results[index] = call()
        finally:
            db.connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_make_one_command(connected_car):
    first, second = in_threads(lambda: lock(connected_car), lambda: lock(connected_car))
    assert first == second  # the later one joined the earlier one, on its way
    assert list(VehicleCommand.objects.values_list("status", flat=True)) == [C.QUEUED]


@pytest.mark.django_db(transaction=True)
def test_two_workers_claim_a_command_once(connected_car):
    command = lock(connected_car)
    claims = in_threads(
        lambda: sending.command_claim(command_id=command.pk),
        lambda: sending.command_claim(command_id=command.pk),
    )
    assert len([claim for claim in claims if claim is not None]) == 1
    command.refresh_from_db()
    assert (command.status, command.attempts) == (C.SENT, 1)
    assert command.events.filter(new_status=C.SENT).count() == 1
