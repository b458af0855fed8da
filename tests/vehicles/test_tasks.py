"""Vehicle-command tasks against the real simulator: each error class from its fault injection,
the send window, the sweep (lost messages, dead workers), the status refresh, and a real worker
end to end."""

from __future__ import annotations

import datetime
import time
from unittest.mock import patch

import pytest
from django.conf import settings
from django.utils import timezone

from tests.vehicles import fixtures_cloud
from vehicles import commands, tasks
from vehicles.cloud import connections, outbox, sending
from vehicles.cloud import sweep as outbox_sweep
from vehicles.models import (
    CommandAction,
    CommandReason,
    CommandStatus,
    VehicleCommand,
    VehicleStatus,
)

C = CommandStatus
# The cloud fixtures (to move to tests/conftest.py): a connected car and its simulator id.

DOOR_OPEN_MESSAGE = (
    "Your vehicle was unable to lock. Please ensure that all doors and the trunk are fully closed."
)


@pytest.fixture
def clock(time_machine):
    """time-machine started at the real now, ticking, so tests can shift it forward."""
    time_machine.move_to(timezone.now(), tick=True)
    return time_machine


def request(car, *, action=CommandAction.LOCK, reason=CommandReason.OWNER) -> VehicleCommand:
    actor = car.owner if reason in outbox.PERSON_REASONS else None
    return commands.vehicle_command_request(car=car, action=action, reason=reason, actor=actor)


def sent_to_car(sim, vehicle_id: str) -> list[dict]:
    """The commands the simulated car received (its log), oldest first."""
    return sim.vehicle(vehicle_id)["commands"]


def run(command: VehicleCommand) -> VehicleCommand:
    tasks.run_vehicle_command(command_id=command.pk)
    command.refresh_from_db()
    return command


def moves(command: VehicleCommand) -> list[tuple[str, str]]:
    return [(e.old_status, e.new_status) for e in command.events.order_by("pk")]


# --- Success -----------------------------------------------------------------------------------


def test_lock_succeeds_is_confirmed_and_runs_once(connected_car, sim_vehicle_id, sim):
    command = run(request(connected_car))

    assert command.status == C.SUCCEEDED
    assert command.attempts == 1
    assert command.sent_at is not None
    assert command.answered_at is not None
    assert command.confirmed_at is not None
    assert command.provider_request_id
    assert (command.error_type, command.error_message) == ("", "")
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True
    assert moves(command) == [("", "queued"), ("queued", "sent"), ("sent", "succeeded")]
    assert VehicleStatus.objects.get(car=connected_car).is_locked is True

    command = run(command)  # the broker delivers it again
    assert command.status == C.SUCCEEDED
    assert len(sent_to_car(sim, sim_vehicle_id)) == 1
    assert len(moves(command)) == 3


def test_unlock(connected_car, sim_vehicle_id, sim):
    sim.set_state(sim_vehicle_id, is_locked=True)
    command = run(request(connected_car, action=CommandAction.UNLOCK))
    assert command.status == C.SUCCEEDED
    assert command.confirmed_at is not None
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False


def test_success_asks_for_a_status_refresh(
    connected_car, sim_vehicle_id, django_capture_on_commit_callbacks
):
    with (
        patch.object(tasks.refresh_vehicle_status, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run(request(connected_car))
    delay.assert_called_once_with(car_id=connected_car.pk)


def test_a_system_command_asks_for_no_full_status_read(
    connected_car, sim_vehicle_id, django_capture_on_commit_callbacks
):
    # A thousand trips starting together would otherwise mean a thousand full status reads;
    # the lock state is confirmed all the same.
    with (
        patch.object(tasks.refresh_vehicle_status, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        command = run(request(connected_car, reason=CommandReason.TRIP_END))
    assert command.confirmed_at is not None
    delay.assert_not_called()


# --- Errors, one class at a time -----------------------------------------------------------------


def test_rate_limit_waits_retry_after_then_succeeds(
    connected_car, sim_vehicle_id, sim, clock, django_capture_on_commit_callbacks
):
    sim.fault(sim_vehicle_id, endpoint="security", type="RATE_LIMIT", code="VEHICLE", retry_after=7)
    command = request(connected_car)

    with (
        patch.object(tasks.run_vehicle_command, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        command = run(command)
    assert command.status == C.QUEUED
    assert (command.error_type, command.error_code) == ("RATE_LIMIT", "VEHICLE")
    assert command.next_attempt_at == pytest.approx(
        timezone.now() + datetime.timedelta(seconds=7), abs=datetime.timedelta(seconds=2)
    )
    apply_async.assert_called_once_with(kwargs={"command_id": command.pk}, countdown=7.0)

    command = run(command)  # an early duplicate message: not due yet, nothing sent
    assert (command.status, command.attempts) == (C.QUEUED, 1)

    clock.shift(datetime.timedelta(seconds=8))
    command = run(command)
    assert (command.status, command.attempts) == (C.SUCCEEDED, 2)
    assert command.error_type == ""  # the retry's success clears the earlier error
    assert [entry["result"] for entry in sent_to_car(sim, sim_vehicle_id)] == [
        "RATE_LIMIT:VEHICLE",
        "success",
    ]


def test_upstream_backs_off_then_fails_after_the_budget(connected_car, sim_vehicle_id, sim, clock):
    budget = sending.TRANSIENT_MAX_ATTEMPTS
    sim.fault(
        sim_vehicle_id, endpoint="security", type="UPSTREAM", code="NO_RESPONSE", count=budget
    )
    # The trip clock's lock: no send window, only the retry budget bounds it.
    command = request(connected_car, reason=CommandReason.TRIP_END)

    delays = []
    for attempt in range(1, budget):
        command = run(command)
        assert (command.status, command.attempts) == (C.QUEUED, attempt)
        delays.append((command.next_attempt_at - timezone.now()).total_seconds())
        clock.move_to(command.next_attempt_at + datetime.timedelta(milliseconds=10), tick=True)
    command = run(command)

    assert (command.status, command.attempts) == (C.FAILED, budget)
    assert (command.error_type, command.error_code) == ("UPSTREAM", "NO_RESPONSE")
    assert command.error_message
    # Exponential with jitter: each wait within [half, all] of 2, 4, 8, 16 s.
    for attempt, delay in enumerate(delays, start=1):
        ceiling = sending.BACKOFF_BASE_S * 2 ** (attempt - 1)
        assert ceiling / 2 - 0.5 <= delay <= ceiling + 0.5
    assert len(sent_to_car(sim, sim_vehicle_id)) == budget
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False


def test_server_error_is_retried(connected_car, sim_vehicle_id, sim):
    sim.fault(sim_vehicle_id, endpoint="security", type="SERVER", code="INTERNAL")
    command = run(request(connected_car))
    assert (command.status, command.error_type) == (C.QUEUED, "SERVER")


def test_door_open_fails_at_once_with_the_vehicles_message(connected_car, sim_vehicle_id, sim):
    sim.fault(sim_vehicle_id, endpoint="security", type="VEHICLE_STATE", code="DOOR_OPEN")
    command = run(request(connected_car))

    assert (command.status, command.attempts) == (C.FAILED, 1)
    assert (command.error_type, command.error_code) == ("VEHICLE_STATE", "DOOR_OPEN")
    assert command.error_message == DOOR_OPEN_MESSAGE
    assert run(command).attempts == 1  # not retried blindly
    assert len(sent_to_car(sim, sim_vehicle_id)) == 1


def test_a_really_open_door_fails_the_lock(connected_car, sim_vehicle_id, sim):
    sim.set_state(sim_vehicle_id, doors_open=True)
    command = run(request(connected_car))
    assert (command.status, command.error_code) == (C.FAILED, "DOOR_OPEN")
    assert command.error_message == DOOR_OPEN_MESSAGE


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("VEHICLE_STATE", "ASLEEP"),
        ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"),
        ("CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED"),
        ("PERMISSION", None),
        ("VALIDATION", None),
        ("BILLING", "VEHICLE_REQUEST_LIMIT"),
        ("AUTHENTICATION", None),
    ],
)
def test_refusals_fail_without_retry(connected_car, sim_vehicle_id, sim, error_type, code):
    fault = {"endpoint": "security", "type": error_type}
    if code:
        fault["code"] = code
    sim.fault(sim_vehicle_id, **fault)
    command = run(request(connected_car))

    assert (command.status, command.attempts) == (C.FAILED, 1)
    assert command.error_type == error_type
    assert command.error_code == (code or "")
    assert command.error_message  # the cloud's suggestion, or plain words of ours
    assert len(sent_to_car(sim, sim_vehicle_id)) == 1


def test_authentication_refusal_marks_the_connection_unhealthy(connected_car, sim_vehicle_id, sim):
    sim.fault(sim_vehicle_id, endpoint="security", type="AUTHENTICATION")
    run(request(connected_car))
    connection = connections.connection_live_for_car(car_id=connected_car.pk)
    assert connection.status == "unhealthy"


# --- The send window ----------------------------------------------------------------------------


def test_person_command_expires_if_not_sent_within_a_minute(
    connected_car, sim_vehicle_id, sim, clock
):
    command = request(connected_car, action=CommandAction.UNLOCK)
    clock.shift(datetime.timedelta(seconds=61))

    command = run(command)
    assert command.status == C.EXPIRED
    assert sent_to_car(sim, sim_vehicle_id) == []  # nobody's car unlocks a minute late


def test_person_command_within_the_minute_still_runs(connected_car, sim_vehicle_id, sim, clock):
    command = request(connected_car)
    clock.shift(datetime.timedelta(seconds=59))
    assert run(command).status == C.SUCCEEDED


def test_system_command_does_not_expire(connected_car, sim_vehicle_id, sim, clock):
    command = request(connected_car, reason=CommandReason.TRIP_END)
    clock.shift(datetime.timedelta(minutes=10))
    assert run(command).status == C.SUCCEEDED


def test_rate_limited_person_command_expires_at_its_window(
    connected_car, sim_vehicle_id, sim, clock
):
    sim.fault(
        sim_vehicle_id, endpoint="security", type="RATE_LIMIT", code="VEHICLE", retry_after=90
    )
    command = run(request(connected_car, action=CommandAction.UNLOCK))
    assert command.status == C.QUEUED
    clock.shift(datetime.timedelta(seconds=91))
    assert run(command).status == C.EXPIRED
    assert len(sent_to_car(sim, sim_vehicle_id)) == 1


# --- The sweep ----------------------------------------------------------------------------------


def stale_after() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.VEHICLE_CLOUD_READ_TIMEOUT) + (
        outbox_sweep.STALE_SENT_MARGIN + datetime.timedelta(seconds=1)
    )


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """Run the sweep as if its transactions committed, with a dispatched command running right
    here as a worker would run it (a spy around the real task instead of the broker). Returns
    how many commands each sweep dispatched."""

    def deliver(*, kwargs, countdown=None, **options):
        tasks.run_vehicle_command(**kwargs)

    def run_sweep() -> int:
        with (
            patch.object(tasks.run_vehicle_command, "apply_async", side_effect=deliver) as spy,
            django_capture_on_commit_callbacks(execute=True),
        ):
            tasks.sweep_vehicle_commands()
        return spy.call_count

    return run_sweep


def test_killed_worker_the_sweep_sends_again_exactly_once(
    connected_car, sim_vehicle_id, sim, clock, sweep
):
    command = request(connected_car, reason=CommandReason.TRIP_END)
    # A worker claimed it and died before calling the car.
    assert sending.command_claim(command_id=command.pk) is not None
    clock.shift(stale_after())

    assert sweep() == 1
    assert sweep() == 0

    command.refresh_from_db()
    assert command.status == C.SUCCEEDED
    assert command.confirmed_at is not None
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True
    assert len(sent_to_car(sim, sim_vehicle_id)) == 1  # the one send the dead worker never made
    assert moves(command).count(("sent", "succeeded")) == 1
    assert moves(command) == [
        ("", "queued"),
        ("queued", "sent"),
        ("sent", "queued"),
        ("queued", "sent"),
        ("sent", "succeeded"),
    ]


def test_killed_worker_after_the_car_applied_it(connected_car, sim_vehicle_id, sim, clock, sweep):
    command = request(connected_car, reason=CommandReason.TRIP_END)
    assert sending.command_claim(command_id=command.pk) is not None
    sim.set_state(sim_vehicle_id, is_locked=True)  # it reached the car; the answer was lost
    clock.shift(stale_after())

    assert sweep() == 0
    assert sweep() == 0

    command.refresh_from_db()
    assert command.status == C.SUCCEEDED
    assert command.confirmed_at is not None
    assert sent_to_car(sim, sim_vehicle_id) == []  # nothing sent again
    assert moves(command).count(("sent", "succeeded")) == 1


def test_killed_worker_persons_command_is_not_sent_late(
    connected_car, sim_vehicle_id, sim, clock, sweep
):
    command = request(connected_car, action=CommandAction.UNLOCK)
    sim.set_state(sim_vehicle_id, is_locked=True)
    assert sending.command_claim(command_id=command.pk) is not None
    clock.shift(stale_after())

    assert sweep() == 0

    command.refresh_from_db()
    assert command.status == C.EXPIRED
    assert sent_to_car(sim, sim_vehicle_id) == []
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True


def test_sweep_leaves_recent_sent_commands_alone(connected_car, sim_vehicle_id, sim, sweep):
    command = request(connected_car, reason=CommandReason.TRIP_END)
    sending.command_claim(command_id=command.pk)
    assert sweep() == 0
    command.refresh_from_db()
    assert command.status == C.SENT  # its worker may still be waiting for the car


def test_late_answer_of_a_resent_command_is_ignored(connected_car, sim_vehicle_id, sim, clock):
    command = request(connected_car, reason=CommandReason.TRIP_END)
    slow = sending.command_claim(command_id=command.pk)
    clock.shift(stale_after())
    stale = outbox_sweep.commands_stale_sent(now=timezone.now())
    assert outbox_sweep.command_settle_stale(stale=stale[0], lock_status=None) == C.QUEUED
    fresh = sending.command_claim(command_id=command.pk)
    assert fresh.attempt == slow.attempt + 1

    from vehicles.cloud.provider import CommandAck

    assert not sending.command_record_ack(claim=slow, ack=CommandAck(message="late"))
    assert sending.command_record_ack(claim=fresh, ack=CommandAck(message="ok"))


def test_an_answer_with_the_car_already_showing_it_is_confirmed_in_the_same_transaction(
    connected_car, django_assert_max_num_queries
):
    from vehicles.cloud.provider import CommandAck, LockStatus

    claim = sending.command_claim(command_id=request(connected_car).pk)
    locked = LockStatus(is_locked=True, doors_open=False)
    VehicleStatus.objects.create(car=connected_car, is_locked=False)  # read before, as usual

    # BEGIN, the command under its lock, the event, the move, the car's status row, COMMIT.
    with django_assert_max_num_queries(6):
        assert sending.command_record_ack(
            claim=claim, ack=CommandAck(message="ok"), confirmed=locked
        )

    command = VehicleCommand.objects.get(pk=claim.command_id)
    assert command.status == C.SUCCEEDED
    assert command.confirmed_at == command.answered_at
    assert VehicleStatus.objects.get(car=connected_car).is_locked is True


def test_a_confirmation_must_show_what_the_command_asked_for(connected_car):
    from vehicles.cloud.provider import CommandAck, LockStatus

    claim = sending.command_claim(command_id=request(connected_car).pk)  # a lock
    with pytest.raises(ValueError, match="confirmed="):
        sending.command_record_ack(
            claim=claim,
            ack=CommandAck(message="ok"),
            confirmed=LockStatus(is_locked=False, doors_open=False),
        )


def test_a_car_slow_to_show_the_command_is_read_again_after_a_pause(
    connected_car, sim_vehicle_id, sim
):
    reads = []
    cloud_class = type(tasks.configured.get_provider())
    real = cloud_class.lock_status

    def first_read_unchanged(self, *, access_token, vehicle_id):
        status = real(self, access_token=access_token, vehicle_id=vehicle_id)
        reads.append(status)
        if len(reads) == 1:  # as if the car had not applied it yet
            return type(status)(is_locked=not status.is_locked, doors_open=status.doors_open)
        return status

    with (
        patch.object(cloud_class, "lock_status", first_read_unchanged),
        patch.object(tasks, "CONFIRM_PAUSES_S", (0.01, 0.01)),
    ):
        command = run(request(connected_car))

    assert len(reads) == 2
    assert command.status == C.SUCCEEDED
    assert command.confirmed_at is not None
    assert command.confirmed_at > command.answered_at


def test_sweep_resends_a_lost_message_once(
    connected_car, sim_vehicle_id, sim, clock, django_capture_on_commit_callbacks
):
    # Committed, but the message never reached a worker (Redis restarted, say).
    command = request(connected_car, reason=CommandReason.TRIP_END)
    clock.shift(outbox_sweep.REDISPATCH_AFTER + datetime.timedelta(seconds=1))

    with (
        patch.object(tasks.run_vehicle_command, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.sweep_vehicle_commands()
        tasks.sweep_vehicle_commands()  # a second sweep right after: no second message
    apply_async.assert_called_once_with(kwargs={"command_id": command.pk}, countdown=None)


def test_sweep_does_not_resend_a_command_waiting_for_its_retry(
    connected_car, sim_vehicle_id, sim, clock, django_capture_on_commit_callbacks
):
    sim.fault(
        sim_vehicle_id, endpoint="security", type="RATE_LIMIT", code="VEHICLE", retry_after=30
    )
    command = run(request(connected_car, reason=CommandReason.TRIP_END))
    clock.shift(datetime.timedelta(seconds=20))
    with (
        patch.object(tasks.run_vehicle_command, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.sweep_vehicle_commands()
    apply_async.assert_not_called()
    command.refresh_from_db()
    assert command.status == C.QUEUED


def test_sweep_expires_overdue_person_commands(connected_car, sim_vehicle_id, sim, clock):
    command = request(connected_car)
    clock.shift(datetime.timedelta(seconds=61))
    tasks.sweep_vehicle_commands()
    tasks.sweep_vehicle_commands()
    command.refresh_from_db()
    assert command.status == C.EXPIRED
    assert moves(command).count(("queued", "expired")) == 1


# --- Live status ----------------------------------------------------------------------------------


def refresh(car) -> VehicleStatus:
    commands.vehicle_status_request_refresh(car_id=car.pk)
    tasks.refresh_vehicle_status(car_id=car.pk)
    return VehicleStatus.objects.get(car=car)


def test_refresh_reads_the_car(connected_car, sim_vehicle_id, sim):
    sim.set_state(
        sim_vehicle_id, is_locked=True, odometer_km=12345, fuel_percent=40, data_age_s=120
    )
    status = refresh(connected_car)

    assert status.is_locked is True
    assert status.doors_open is False
    assert (status.latitude, status.longitude) == pytest.approx((52.374, 4.898), abs=0.01)
    assert status.odometer_km == pytest.approx(12345, abs=1)
    assert status.fuel_percent == pytest.approx(40, abs=1)
    assert status.battery_percent is None
    assert status.fetched_at is not None
    assert status.data_age is not None
    assert status.data_age <= status.fetched_at - datetime.timedelta(seconds=100)
    assert status.last_error == ""


def test_refresh_runs_once_per_request(connected_car, sim_vehicle_id, sim):
    status = refresh(connected_car)
    sim.set_state(sim_vehicle_id, odometer_km=99999)
    tasks.refresh_vehicle_status(car_id=connected_car.pk)  # redelivered
    status.refresh_from_db()
    assert status.odometer_km != pytest.approx(99999, abs=1)


def test_refresh_of_an_electric_car_reads_the_battery(sim, owner):
    from tests.factories import CarFactory

    car = CarFactory(owner=owner, make="TESLA", model="Model 3", fuel_type="electric")
    fixtures_cloud.connect_car(sim, car, battery_percent=80, powertrain="BEV")
    status = refresh(car)
    assert status.battery_percent == pytest.approx(80, abs=1)
    assert status.fuel_percent is None


def test_refresh_tolerates_a_reading_it_may_not_have(connected_car, sim_vehicle_id, sim):
    sim.fault(sim_vehicle_id, endpoint="location", type="PERMISSION")
    sim.fault(sim_vehicle_id, endpoint="fuel", type="COMPATIBILITY", code="VEHICLE_NOT_CAPABLE")
    status = refresh(connected_car)
    assert status.latitude is None
    assert status.fuel_percent is None
    assert status.odometer_km is not None
    assert status.last_error == ""


def test_refresh_records_an_error_and_keeps_what_it_read(connected_car, sim_vehicle_id, sim):
    sim.fault(sim_vehicle_id, endpoint="odometer", type="RATE_LIMIT", code="VEHICLE")
    status = refresh(connected_car)
    assert status.is_locked is False
    assert status.latitude is not None
    assert status.odometer_km is None
    # Recorded in words for the people who read it on the car and trip pages, never as a code.
    assert status.last_error
    assert "RATE_LIMIT" not in status.last_error


# --- End to end with a real worker ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_lock_end_to_end_with_a_real_worker(
    celery_worker_thread, connected_car, sim_vehicle_id, sim
):
    command = request(connected_car)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        command.refresh_from_db()
        if command.status == C.SUCCEEDED and command.confirmed_at:
            break
        time.sleep(0.1)
    assert command.status == C.SUCCEEDED, command.status
    assert command.confirmed_at is not None
    car_state = sim.vehicle(sim_vehicle_id)
    assert car_state["is_locked"] is True
    assert [(c["action"], c["result"]) for c in car_state["commands"]] == [("LOCK", "success")]
