"""The lock at the end of a window: waiting, locked, retried with alerts, handed over, and the
emails that go once each. The lock commands run against the real simulator (the vehicle task
called directly); time moves with time-machine."""

from __future__ import annotations

import datetime
import json
import uuid
from unittest.mock import patch

import pytest

from bookings import services as booking_services
from keys import endlocks, grants, lifecycle, selectors, tasks_email, use
from keys.models import EndLock
from tests.bookings.fixtures_bookings import request_booking
from tests.factories import RenterFactory, UserFactory
from vehicles import tasks as vehicle_tasks
from vehicles.cloud import sending
from vehicles.cloud.provider import CommandAck
from vehicles.models import CommandStatus, VehicleCommand, VehicleStatus, WebhookEvent
from vehicles.webhooks import sign

pytestmark = pytest.mark.django_db

H = datetime.timedelta(hours=1)
M = datetime.timedelta(minutes=1)
DOOR_OPEN = {"endpoint": "security", "type": "VEHICLE_STATE", "code": "DOOR_OPEN", "count": 50}


@pytest.fixture
def end_lock(active_booking, active_trip_key, clock) -> EndLock:
    """The trip just ended on time: its end lock is pending and its LOCK queued."""
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    return EndLock.objects.get(key=active_trip_key)


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    """One sweep step for the end lock as if its transaction committed: what it did, and the
    alert numbers it queued (new LOCKs stay queued: the test runs them)."""

    def run(end_lock: EndLock) -> tuple[str, list[int]]:
        with (
            patch.object(tasks_email.send_end_lock_alert, "delay") as alert,
            patch.object(vehicle_tasks.run_vehicle_command, "apply_async"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            did = endlocks.end_lock_check(end_lock_id=end_lock.pk)
        return did, [call.kwargs["number"] for call in alert.call_args_list]

    return run


def run_latest_lock(end_lock: EndLock) -> VehicleCommand:
    """The vehicle worker sends the end lock's latest LOCK to the simulator."""
    end_lock.refresh_from_db()
    vehicle_tasks.run_vehicle_command(command_id=end_lock.command_id)
    return VehicleCommand.objects.get(pk=end_lock.command_id)


def fresh(end_lock: EndLock) -> EndLock:
    end_lock.refresh_from_db()
    return end_lock


# --- Waiting and locked ----------------------------------------------------------------------


def test_waiting_while_the_lock_is_on_its_way(end_lock, check):
    assert check(end_lock) == ("waiting", [])
    sending.command_claim(command_id=end_lock.command_id)  # sent, no answer yet
    assert check(end_lock) == ("waiting", [])
    assert fresh(end_lock).status == "pending"


def test_locked_once_the_car_confirms(end_lock, check, sim, sim_vehicle_id, clock):
    command = run_latest_lock(end_lock)
    assert (command.status, command.confirmed_at is not None) == (CommandStatus.SUCCEEDED, True)
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True

    assert check(end_lock) == ("locked", [])  # nobody was alerted: nothing more to say
    end_lock = fresh(end_lock)
    assert (end_lock.status, end_lock.done_at, end_lock.attempts) == ("locked", clock_now(), 1)
    assert check(end_lock) == ("", [])  # done: a second sweep leaves it alone


def test_the_first_lock_counts_with_a_running_clock(active_booking, active_trip_key, clock, check):
    # Real time never stands still: the end lock's own first LOCK must count as "since the end".
    clock.move_to(active_booking.ends_at, tick=True)
    booking_services.booking_complete(booking_id=active_booking.pk)
    end_lock = EndLock.objects.get(key=active_trip_key)
    assert end_lock.command.requested_at >= end_lock.created_at
    run_latest_lock(end_lock)
    assert check(end_lock) == ("locked", [])


def clock_now() -> datetime.datetime:
    from django.utils import timezone

    return timezone.now()


def test_the_owners_own_lock_counts(end_lock, check, request_car, owner, sim, sim_vehicle_id):
    lock = use.car_command_request(car=request_car, user=owner, action="lock")
    assert VehicleCommand.objects.get(pk=end_lock.command_id).status == CommandStatus.SUPERSEDED
    vehicle_tasks.run_vehicle_command(command_id=lock.pk)
    assert check(end_lock) == ("locked", [])


# --- Retries and alerts ----------------------------------------------------------------------


def test_retried_every_three_minutes_alerted_at_once_then_hourly(
    end_lock, check, sim, sim_vehicle_id, clock
):
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    failed = run_latest_lock(end_lock)
    assert (failed.status, failed.error_code) == (CommandStatus.FAILED, "DOOR_OPEN")

    assert check(end_lock) == ("waiting+alerted", [1])  # told at once
    assert check(end_lock) == ("waiting", [])  # the same sweep again: no second alert
    end_lock = fresh(end_lock)
    assert "DOOR_OPEN" in end_lock.last_problem
    assert "doors and the trunk are fully closed" in end_lock.last_problem
    assert end_lock.alerts_sent == 1

    clock.move_to(end_lock.next_attempt_at - datetime.timedelta(seconds=1), tick=False)
    assert check(end_lock) == ("waiting", [])
    first_alert = end_lock.last_alert_at
    for attempt in range(2, 21):  # every three minutes for the first hour
        clock.move_to(fresh(end_lock).next_attempt_at, tick=False)
        assert check(end_lock) == ("retried", []), attempt
        retry = run_latest_lock(end_lock)
        assert (retry.reason, retry.status) == ("trip_end", CommandStatus.FAILED)
        assert fresh(end_lock).attempts == attempt
    clock.move_to(first_alert + endlocks.ALERT_EVERY, tick=False)
    assert check(end_lock) == ("retried+alerted", [2])
    assert fresh(end_lock).alerts_sent == 2
    assert VehicleCommand.objects.filter(reason="trip_end").count() == 21
    assert [c["result"] for c in sim.vehicle(sim_vehicle_id)["commands"]] == [
        "VEHICLE_STATE:DOOR_OPEN"
    ] * 20


def test_alerts_go_to_the_owner_the_renter_and_the_admins_once_each(
    end_lock, check, sim, sim_vehicle_id, admin, mailoutbox
):
    UserFactory(email="retired-admin@example.test", is_staff=True, is_active=False)
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    run_latest_lock(end_lock)
    assert check(end_lock) == ("waiting+alerted", [1])

    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=1)
    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=1)  # delivered again

    assert sorted(m.to[0] for m in mailoutbox) == [
        "admin@example.test",
        "owner@example.test",
        "renter@example.test",
    ]
    for message in mailoutbox:
        assert message.subject == f"Action needed: the {end_lock.car.title} did not lock"
        assert "fully closed" in message.body
        assert str(end_lock.key.public_id) in message.body  # a link to the key's page


def test_locked_now_after_the_fault_is_cleared(
    end_lock, check, sim, sim_vehicle_id, admin, clock, mailoutbox
):
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    run_latest_lock(end_lock)
    assert check(end_lock) == ("waiting+alerted", [1])
    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=1)
    mailoutbox.clear()

    sim.http.delete(f"{sim.url}/_sim/vehicles/{sim_vehicle_id}/faults", timeout=10)
    clock.move_to(fresh(end_lock).next_attempt_at, tick=False)
    assert check(end_lock) == ("retried", [])
    assert run_latest_lock(end_lock).confirmed_at is not None
    assert check(end_lock) == ("locked", [0])

    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=0)
    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=0)
    assert len(mailoutbox) == 3
    assert {m.subject for m in mailoutbox} == {f"The {end_lock.car.title} is locked now"}
    assert fresh(end_lock).status == "locked"


def test_accepted_but_never_confirmed_counts_as_a_problem(end_lock, check, clock):
    # The cloud accepted the LOCK, but the car never reported itself locked.
    claim = sending.command_claim(command_id=end_lock.command_id)
    assert sending.command_record_ack(claim=claim, ack=CommandAck(message="accepted"))
    assert check(end_lock) == ("waiting", [])

    clock.shift(endlocks.UNCONFIRMED_AFTER)
    assert check(end_lock) == ("waiting+alerted", [1])
    assert "does not report itself locked" in fresh(end_lock).last_problem
    clock.move_to(fresh(end_lock).next_attempt_at, tick=False)
    assert check(end_lock) == ("retried", [])


# --- Webhooks never settle an end lock -------------------------------------------------------

WEBHOOK_URL = "/webhooks/smartcar/"


def locked_event(vehicle_id: str) -> bytes:
    """A VEHICLE_STATE event saying the car is locked, as the vehicle cloud would send it."""
    from django.utils import timezone

    payload = {
        "eventId": str(uuid.uuid4()),
        "eventType": "VEHICLE_STATE",
        "vehicleId": vehicle_id,
        "data": {"signals": [{"code": "closure-islocked", "body": {"value": True}}]},
        "meta": {"version": "4.0", "deliveredAt": int(timezone.now().timestamp() * 1000)},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def accepted_not_applied(end_lock: EndLock) -> VehicleCommand:
    """The cloud accepted the end lock's LOCK, but the car has not locked (and says so)."""
    claim = sending.command_claim(command_id=end_lock.command_id)
    assert sending.command_record_ack(claim=claim, ack=CommandAck(message="accepted"))
    return VehicleCommand.objects.get(pk=end_lock.command_id)


def status_snapshot(car_id: int) -> dict[str, object] | None:
    return VehicleStatus.objects.filter(car_id=car_id).values().first()


def test_a_forged_event_signed_by_the_verify_answer_changes_nothing(
    end_lock, check, client, settings, sim, sim_vehicle_id, clock
):
    command = accepted_not_applied(end_lock)
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False
    before = status_snapshot(end_lock.car_id)

    # The attacker has VERIFY sign the body of their choice, then delivers it as an event.
    forged = locked_event(sim_vehicle_id)
    asked = client.post(
        WEBHOOK_URL,
        {"eventId": "x", "eventType": "VERIFY", "data": {"challenge": forged.decode()}},
        content_type="application/json",
    )
    oracle = asked.json().get("challenge", "") if asked.status_code == 200 else ""
    delivered = client.post(
        WEBHOOK_URL, forged, content_type="application/json", headers={"SC-Signature": oracle}
    )

    assert 400 <= delivered.status_code < 500
    assert not WebhookEvent.objects.exists()
    assert status_snapshot(end_lock.car_id) == before
    command.refresh_from_db()
    assert command.confirmed_at is None
    clock.shift(endlocks.UNCONFIRMED_AFTER)
    assert check(end_lock) == ("waiting+alerted", [1])
    assert fresh(end_lock).status == "pending"


def test_a_signed_locked_event_leaves_an_unlocked_car_escalating(
    end_lock,
    check,
    client,
    settings,
    sim,
    sim_vehicle_id,
    clock,
    django_capture_on_commit_callbacks,
):
    command = accepted_not_applied(end_lock)
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False

    body = locked_event(sim_vehicle_id)
    signature = sign(settings.SMARTCAR_WEBHOOK_SECRET, body)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            WEBHOOK_URL, body, content_type="application/json", headers={"SC-Signature": signature}
        )
    assert response.status_code == 200
    # Shown as the last known state, but the webhook alone settles nothing.
    assert VehicleStatus.objects.get(car_id=end_lock.car_id).is_locked is True
    command.refresh_from_db()
    assert command.confirmed_at is None
    clock.shift(endlocks.UNCONFIRMED_AFTER)
    assert check(end_lock) == ("waiting+alerted", [1])

    # It prompted the car's own read, on commit; the car says unlocked.
    assert [(c.func.__self__.name, c.keywords) for c in queued] == [
        ("vehicles.tasks.confirm_vehicle_commands", {"car_id": end_lock.car_id})
    ]
    vehicle_tasks.confirm_vehicle_commands(car_id=end_lock.car_id)
    vehicle_tasks.confirm_vehicle_commands(car_id=end_lock.car_id)  # delivered again
    command.refresh_from_db()
    assert command.confirmed_at is None
    assert VehicleStatus.objects.get(car_id=end_lock.car_id).is_locked is False
    assert check(end_lock) == ("waiting", [])
    assert fresh(end_lock).status == "pending"


def test_a_signed_locked_event_prompts_the_read_that_confirms_a_locked_car(
    end_lock,
    check,
    client,
    settings,
    sim,
    sim_vehicle_id,
    clock,
    django_capture_on_commit_callbacks,
):
    # The car locked a moment after its cloud answered: the webhook says so, the read confirms.
    command = accepted_not_applied(end_lock)
    sim.set_state(sim_vehicle_id, is_locked=True)
    body = locked_event(sim_vehicle_id)
    signature = sign(settings.SMARTCAR_WEBHOOK_SECRET, body)
    with (
        patch.object(vehicle_tasks.confirm_vehicle_commands, "delay") as read,
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(
            WEBHOOK_URL, body, content_type="application/json", headers={"SC-Signature": signature}
        )
    read.assert_called_once_with(car_id=end_lock.car_id)
    vehicle_tasks.confirm_vehicle_commands(car_id=end_lock.car_id)
    command.refresh_from_db()
    assert command.confirmed_at is not None
    assert check(end_lock) == ("locked", [])


# --- Handed over -----------------------------------------------------------------------------


def test_handed_over_when_the_next_trip_starts(
    end_lock, check, request_car, owner, sim, sim_vehicle_id, clock
):
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    run_latest_lock(end_lock)
    next_trip = request_booking(request_car, RenterFactory(), starts_at=end_lock.created_at + H)
    booking_services.booking_confirm(booking=next_trip, user=owner)
    check(end_lock)

    clock.move_to(next_trip.starts_at, tick=False)
    booking_services.booking_start(booking_id=next_trip.pk)
    assert check(end_lock) == ("handed_over", [])
    end_lock = fresh(end_lock)
    assert end_lock.status == "handed_over"
    assert end_lock.last_problem == "the next trip or service window started"


def test_handed_over_to_a_service_window_booked_before_the_trip(
    request_car, owner, renter, technician, sim, sim_vehicle_id, clock, check
):
    # The owner booked the cleaning first; the trip just before it came later.
    from tests.bookings.fixtures_bookings import hour_from_now

    trip_start = hour_from_now(days=2)
    service_start = trip_start + 5 * H
    service_key = grants.service_key_issue(
        car=request_car,
        user=owner,
        email=technician.email,
        starts_at=service_start,
        ends_at=service_start + 2 * H,
    )
    clock.shift(H)
    booking = booking_services.booking_confirm(
        booking=request_booking(request_car, renter, starts_at=trip_start), user=owner
    )
    clock.move_to(booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=booking.pk)
    clock.move_to(booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=booking.pk)
    end_lock = EndLock.objects.get(key=selectors.trip_key_for_booking(booking_id=booking.pk))
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    run_latest_lock(end_lock)
    check(end_lock)

    clock.move_to(service_start, tick=False)
    lifecycle.key_activate(key_id=service_key.pk)
    # The technician has the car now: locking it on them every three minutes would be wrong.
    assert check(end_lock) == ("handed_over", [])


def test_handed_over_when_the_owner_unlocked(
    end_lock, check, request_car, owner, sim, sim_vehicle_id, clock
):
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    run_latest_lock(end_lock)
    clock.shift(5 * M)
    use.car_command_request(car=request_car, user=owner, action="unlock")
    assert check(end_lock) == ("handed_over", [])
    assert fresh(end_lock).last_problem == "the owner unlocked the car since"


def test_no_connection_is_a_problem_from_the_start(
    active_booking, active_trip_key, request_car, clock, check
):
    from vehicles.cloud import connections

    connection = connections.connection_live_for_car(car_id=request_car.pk)
    connection.status = "disconnected"
    connection.save(update_fields=["status"])
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    end_lock = EndLock.objects.get(key=active_trip_key)
    assert end_lock.command is None
    assert check(end_lock) == ("waiting+alerted", [1])
    assert fresh(end_lock).last_problem == "The lock could not be sent."
