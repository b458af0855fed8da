"""Faults around the trip's automation, against the real simulator and real Redis:

- a vehicle worker process killed (SIGKILL) while the car is still answering the trip start's
  UNLOCK: the vehicles sweep settles the command and the car ends unlocked, exactly once;
- the end lock meeting DOOR_OPEN or UNREACHABLE (the real worker runs every LOCK; the end lock
  retries every few minutes and alerts the owner, the renter and the admins until the car
  locks, then says it is locked now);
- 429 with Retry-After and 502/500 at the end lock: the command's own retries take care of it
  without an alert (run_vehicle_command called here, the clock moved past each wait, rather
  than waiting out Retry-After and the backoff in real time).
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from bookings import services as booking_services
from bookings import tasks as booking_tasks
from carshare.celery import app
from keys import endlocks, selectors, tasks_email
from keys import tasks as key_tasks
from keys.models import EndLock
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.keys.helpers import wait_for
from vehicles import tasks as vehicle_tasks
from vehicles.cloud import sending, sweep
from vehicles.models import CommandStatus, VehicleCommand

C = CommandStatus
M = datetime.timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[2]


def car_log(sim, vehicle_id: str) -> list[tuple[str, str]]:
    return [(c["action"], c["result"]) for c in sim.vehicle(vehicle_id)["commands"]]


def moves(command: VehicleCommand) -> list[tuple[str, str]]:
    return [(e.old_status, e.new_status) for e in command.events.order_by("pk")]


def purge_queues() -> None:
    with app.connection_for_write() as broker:
        for queue in ("default", "vehicle"):
            broker.default_channel.queue_purge(queue)


# --- A worker killed mid-trip-start ----------------------------------------------------------


class WorkerProcess:
    """`celery worker -Q vehicle` as its own process on the test database, to be killed."""

    def __init__(self, log: Path, *, simulator_url: str) -> None:
        db = connection.settings_dict
        database_url = "postgres://{}{}@{}:{}/{}".format(
            db["USER"],
            f":{db['PASSWORD']}" if db["PASSWORD"] else "",
            db["HOST"] or "127.0.0.1",
            db["PORT"] or 5432,
            db["NAME"],  # the test database
        )
        env = {
            **os.environ,
            "CARSHARE_TESTING": "1",
            "DATABASE_URL": database_url,
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": django_settings.REDIS_URL,
            "SMARTCAR_MODE": "simulator",
            "SIMULATOR_URL": simulator_url,
            "SMARTCAR_API_ORIGIN": simulator_url,
            "SMARTCAR_AUTH_ORIGIN": simulator_url,
            "SMARTCAR_CONNECT_ORIGIN": simulator_url,
            "SMARTCAR_CLIENT_ID": django_settings.SMARTCAR_CLIENT_ID,
            "SMARTCAR_CLIENT_SECRET": django_settings.SMARTCAR_CLIENT_SECRET,
            "SMARTCAR_REDIRECT_URI": django_settings.SMARTCAR_REDIRECT_URI,
        }
        self.log = log
        self._log_fh = log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and Celery
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "carshare",
                "worker",
                "-Q",
                "vehicle",
                "-P",
                "threads",
                "-c",
                "2",
                "-n",
                f"doomed-{os.getpid()}@%h",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, what="the worker process to start", timeout=60)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited: {self.log.read_text()}")
        return " ready." in self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, no answer recorded."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log_fh.close()


@pytest.fixture
def doomed_worker(sim, tmp_path):
    purge_queues()
    worker = WorkerProcess(tmp_path / "worker.log", simulator_url=sim.url)
    yield worker
    worker.kill()
    # Its unacknowledged message would come back to a later test's worker after the broker's
    # visibility timeout; that command is long settled, so drop the message with the test.
    with app.connection_for_write() as broker:
        broker.default_channel.client.delete("unacked", "unacked_index")


def real_now() -> datetime.datetime:
    return timezone.now()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_trip_start_leaves_the_car_unlocked_once(
    connected_car, sim, sim_vehicle_id, renter, doomed_worker, time_machine
):
    # The car is locked, and slow to answer (the worker dies while it waits).
    sim.set_state(sim_vehicle_id, is_locked=True, latency_ms=30_000)
    # A trip starting right now, booked ten minutes ago. The worker process keeps the real
    # clock, and it checks the key against it before calling the car.
    start = real_now()
    time_machine.move_to(start - 10 * M, tick=True)
    booking = request_booking(connected_car, renter, starts_at=start, hours=2)
    time_machine.move_to(start + datetime.timedelta(seconds=1), tick=True)

    booking_tasks.run_trip_clock()
    unlock = VehicleCommand.objects.get(reason="trip_start")
    wait_for(lambda: car_log(sim, sim_vehicle_id), what="the car to receive the unlock")
    doomed_worker.kill()

    unlock.refresh_from_db()
    assert (unlock.status, unlock.attempts) == (C.SENT, 1)  # and nobody left to answer
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True  # still on its way
    sim.set_state(sim_vehicle_id, latency_ms=0)

    # Past any answer's time, the sweep finds it; a worker of ours sends it again.
    stale = datetime.timedelta(seconds=django_settings.VEHICLE_CLOUD_READ_TIMEOUT)
    time_machine.shift(stale + sweep.STALE_SENT_MARGIN + datetime.timedelta(seconds=1))
    with start_worker(
        app, pool="threads", concurrency=2, perform_ping_check=False, queues=["vehicle"]
    ):
        vehicle_tasks.sweep_vehicle_commands()
        wait_for(
            lambda: VehicleCommand.objects.filter(
                pk=unlock.pk, status=C.SUCCEEDED, confirmed_at__isnull=False
            ).exists(),
            what="the unlock to be sent again and confirmed",
        )
        vehicle_tasks.sweep_vehicle_commands()  # again: nothing left to settle

    unlock.refresh_from_db()
    assert unlock.attempts == 2
    assert moves(unlock) == [
        ("", "queued"),
        ("queued", "sent"),
        ("sent", "queued"),  # settled by the sweep
        ("queued", "sent"),
        ("sent", "succeeded"),
    ]
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False
    assert VehicleCommand.objects.filter(car=connected_car).count() == 1
    assert selectors.trip_key_for_booking(booking_id=booking.pk).status == "active"


# --- Faults at the end lock, with a real worker ------------------------------------------


@pytest.fixture
def ended_trip(active_trip_for_worker, time_machine):
    booking, key = active_trip_for_worker
    time_machine.move_to(booking.ends_at, tick=True)
    return booking, key


@pytest.fixture
def active_trip_for_worker(
    celery_worker_thread, connected_car, renter, sim, sim_vehicle_id, time_machine
):
    """A trip under way on the simulator car, its start's unlock done by the worker."""
    booking = request_booking(connected_car, renter, starts_at=hour_from_now(days=1), hours=2)
    time_machine.move_to(booking.starts_at, tick=True)
    booking_services.booking_start(booking_id=booking.pk)
    wait_for(
        lambda: VehicleCommand.objects.filter(reason="trip_start", status=C.SUCCEEDED).exists(),
        what="the start's unlock",
    )
    return booking, selectors.trip_key_for_booking(booking_id=booking.pk)


def latest_end_lock_command(end_lock: EndLock) -> VehicleCommand:
    end_lock.refresh_from_db()
    return end_lock.command


def settled(end_lock: EndLock) -> VehicleCommand:
    """Wait for the worker to finish the end lock's latest LOCK."""
    return wait_for(
        lambda: (c := latest_end_lock_command(end_lock)).status in (C.SUCCEEDED, C.FAILED) and c,
        what="the worker to answer the end lock's LOCK",
    )


def alerted(mailoutbox) -> list[str]:
    return sorted(m.to[0] for m in mailoutbox if m.subject.startswith("Action needed: "))


def told_locked(mailoutbox) -> list[str]:
    return sorted(m.to[0] for m in mailoutbox if m.subject.endswith(" is locked now"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("DOOR_OPEN", "doors and the trunk are fully closed"),
        ("UNREACHABLE", ""),
    ],
)
def test_a_car_that_will_not_lock_is_retried_and_everyone_is_told(
    ended_trip, sim, sim_vehicle_id, admin, mailoutbox, time_machine, code, message
):
    _, key = ended_trip
    sim.fault(sim_vehicle_id, endpoint="security", type="VEHICLE_STATE", code=code, count=50)

    booking_tasks.run_trip_clock()  # the trip ends: the LOCK goes to the worker
    end_lock = EndLock.objects.get(key=key)
    failed = settled(end_lock)
    assert (failed.status, failed.error_type, failed.error_code) == (
        C.FAILED,
        "VEHICLE_STATE",
        code,
    )
    assert failed.attempts == 1  # the car said why: not retried blindly by the command

    key_tasks.run_key_clock()  # the sweep sees it: alert at once
    wait_for(lambda: len(alerted(mailoutbox)) == 3, what="the first alerts")
    assert alerted(mailoutbox) == [
        "admin@example.test",
        "owner@example.test",
        "renter@example.test",
    ]
    assert all(message in m.body for m in mailoutbox if m.subject.startswith("Action needed"))
    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=1)  # delivered again
    assert len(alerted(mailoutbox)) == 3

    # Every three minutes another LOCK, with no new alert within the hour.
    for attempt in (2, 3):
        end_lock.refresh_from_db()
        time_machine.move_to(end_lock.next_attempt_at, tick=True)
        key_tasks.run_key_clock()
        retry = settled(end_lock)
        assert (retry.status, retry.error_code, retry.reason) == (C.FAILED, code, "trip_end")
        end_lock.refresh_from_db()
        assert end_lock.attempts == attempt
    assert len(alerted(mailoutbox)) == 3

    # The door is shut (the fault cleared): the next retry locks, and everyone hears it.
    sim.http.delete(f"{sim.url}/_sim/vehicles/{sim_vehicle_id}/faults", timeout=10)
    time_machine.move_to(end_lock.next_attempt_at, tick=True)
    key_tasks.run_key_clock()
    wait_for(
        lambda: latest_end_lock_command(end_lock).confirmed_at is not None,
        what="the retried LOCK to be confirmed",
    )
    key_tasks.run_key_clock()
    end_lock.refresh_from_db()
    assert (end_lock.status, end_lock.attempts) == ("locked", 4)
    wait_for(lambda: len(told_locked(mailoutbox)) == 3, what="the locked-now emails")
    tasks_email.send_end_lock_alert(end_lock_id=end_lock.pk, number=0)
    assert len(told_locked(mailoutbox)) == 3
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True
    assert car_log(sim, sim_vehicle_id)[1:] == [("LOCK", f"VEHICLE_STATE:{code}")] * 3 + [
        ("LOCK", "success")
    ]


# --- The command's own retries: no alert while within its budget -----------------------------


@pytest.fixture
def end_lock_ready(active_booking, active_trip_key, clock) -> EndLock:
    """The trip just ended: its end lock's first LOCK is queued, not yet run."""
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    return EndLock.objects.get(key=active_trip_key)


def run(command: VehicleCommand) -> VehicleCommand:
    vehicle_tasks.run_vehicle_command(command_id=command.pk)
    command.refresh_from_db()
    return command


@pytest.mark.django_db
def test_a_rate_limited_end_lock_waits_retry_after_and_locks_without_alarm(
    end_lock_ready, sim, sim_vehicle_id, clock
):
    sim.fault(
        sim_vehicle_id, endpoint="security", type="RATE_LIMIT", code="VEHICLE", retry_after=40
    )
    command = run(end_lock_ready.command)
    assert (command.status, command.error_type, command.attempts) == (C.QUEUED, "RATE_LIMIT", 1)
    assert command.next_attempt_at == timezone.now() + datetime.timedelta(seconds=40)
    assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "waiting"

    clock.shift(datetime.timedelta(seconds=38))
    assert run(command).attempts == 1  # an early message: not due, nothing sent
    clock.shift(datetime.timedelta(seconds=2))
    command = run(command)
    assert (command.status, command.attempts) == (C.SUCCEEDED, 2)
    assert command.confirmed_at is not None

    assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "locked"
    end_lock_ready.refresh_from_db()
    assert (end_lock_ready.alerts_sent, end_lock_ready.attempts) == (0, 1)
    assert car_log(sim, sim_vehicle_id)[-2:] == [
        ("LOCK", "RATE_LIMIT:VEHICLE"),
        ("LOCK", "success"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("error_type", "code", "status"),
    [("UPSTREAM", "NO_RESPONSE", 502), ("SERVER", "INTERNAL", 500)],
)
def test_a_cloud_hiccup_at_the_end_lock_backs_off_and_locks(
    end_lock_ready, sim, sim_vehicle_id, clock, error_type, code, status
):
    sim.fault(
        sim_vehicle_id, endpoint="security", type=error_type, code=code, status=status, count=2
    )
    command = end_lock_ready.command
    waits = []
    for attempt in (1, 2):
        command = run(command)
        assert (command.status, command.error_type, command.attempts) == (
            C.QUEUED,
            error_type,
            attempt,
        )
        waits.append((command.next_attempt_at - timezone.now()).total_seconds())
        assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "waiting"
        clock.move_to(command.next_attempt_at, tick=False)
    command = run(command)
    assert (command.status, command.attempts) == (C.SUCCEEDED, 3)
    # Exponential backoff with jitter: within [half, all] of 2 s, then of 4 s.
    assert 1 <= waits[0] <= 2
    assert 2 <= waits[1] <= 4
    assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "locked"
    end_lock_ready.refresh_from_db()
    assert end_lock_ready.alerts_sent == 0


@pytest.mark.django_db
def test_a_cloud_down_past_the_budget_hands_over_to_the_end_lock(
    end_lock_ready, sim, sim_vehicle_id, clock
):
    sim.fault(
        sim_vehicle_id,
        endpoint="security",
        type="UPSTREAM",
        code="NO_RESPONSE",
        count=sending.TRANSIENT_MAX_ATTEMPTS,
    )
    command = end_lock_ready.command
    for _ in range(sending.TRANSIENT_MAX_ATTEMPTS):
        command = run(command)
        if command.status == C.QUEUED:
            clock.move_to(command.next_attempt_at, tick=False)
    assert (command.status, command.attempts) == (C.FAILED, sending.TRANSIENT_MAX_ATTEMPTS)
    assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "waiting+alerted"
    clock.move_to(end_lock_ready.next_attempt_at, tick=False)
    assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "retried"
    end_lock_ready.refresh_from_db()
    assert run(end_lock_ready.command).status == C.SUCCEEDED
    assert endlocks.end_lock_check(end_lock_id=end_lock_ready.pk) == "locked"
