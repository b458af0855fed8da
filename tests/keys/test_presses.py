"""Many presses at once: every simultaneous press of one action on one car is answered with the
same command (no deadlock, no 500, one call to the car), and the unlock limits count accepted
commands in a sliding window. Real PostgreSQL with a connection per thread, the simulator and a
real worker where the car is called."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.http import Http404
from django.test import Client

from bookings import services as booking_services
from keys import errors, selectors, use
from keys.models import AuditEntry
from tests.api.conftest import session_token
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.keys.helpers import wait_for
from vehicles import selectors as vehicle_selectors
from vehicles.models import CommandStatus, VehicleCommand

C = CommandStatus
PRESSES = 30
S = datetime.timedelta(seconds=1)


def at_once(press: Callable[[int], Any], count: int = PRESSES) -> list[Any]:
    """Run press(i) in `count` threads released together, each on its own PostgreSQL
    connection; returns what each returned or raised."""
    barrier = threading.Barrier(count)
    outcomes: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = press(i)
        except Exception as error:  # recorded and asserted by the caller
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_thirty_simultaneous_unlocks_make_one_command(transactional_db, active_trip_key, renter):
    outcomes = at_once(
        lambda i: use.car_command_request(key=active_trip_key, user=renter, action="unlock")
    )

    errors = [o for o in outcomes if not isinstance(o, VehicleCommand)]
    assert errors == []
    # One unlock on its way, the renter's: the trip start's, not sent yet (no worker runs
    # here), yielded to the first press, and every other press joined that one.
    command = VehicleCommand.objects.get(car_id=active_trip_key.car_id, reason="renter")
    assert {o.pk for o in outcomes} == {command.pk}
    assert (command.action, command.status) == ("unlock", C.QUEUED)
    pending = VehicleCommand.objects.filter(car_id=command.car_id, status__in=[C.QUEUED, C.SENT])
    assert list(pending) == [command]
    # Every press is on record, each pointing at the one command.
    presses = AuditEntry.objects.filter(actor=renter, action="unlock")
    assert presses.count() == PRESSES
    assert set(presses.values_list("allowed", "command_public_id")) == {(True, command.public_id)}


@pytest.mark.django_db(transaction=True)
def test_simultaneous_owner_unlocks_and_lock_nows_join(transactional_db, connected_car, owner):
    """The owner's own unlock (no trip on) and "Lock now" get the same treatment."""
    unlocks = at_once(
        lambda i: use.car_command_request(car=connected_car, user=owner, action="unlock"), 10
    )
    assert all(isinstance(o, VehicleCommand) for o in unlocks), unlocks
    assert len({o.pk for o in unlocks}) == 1
    locks = at_once(
        lambda i: use.car_command_request(car=connected_car, user=owner, action="lock"), 10
    )
    assert all(isinstance(o, VehicleCommand) for o in locks), locks
    assert len({o.pk for o in locks}) == 1
    # The lock is the latest wish: the unlock still waiting to be sent yields to it.
    assert VehicleCommand.objects.get(pk=unlocks[0].pk).status == C.SUPERSEDED
    assert VehicleCommand.objects.filter(car=connected_car).count() == 2


@pytest.mark.django_db(transaction=True)
def test_thirty_api_presses_unlock_the_car_once(
    transactional_db, celery_worker_thread, connected_car, renter, sim, sim_vehicle_id, time_machine
):
    """Through HTTP, each press its own client and connection, with a worker sending commands
    to the simulator: every press answers 202 with the same command, and the car unlocks once."""
    booking = request_booking(connected_car, renter, starts_at=hour_from_now(days=1), hours=2)
    time_machine.move_to(booking.starts_at, tick=True)
    booking_services.booking_start(booking_id=booking.pk)
    wait_for(
        lambda: VehicleCommand.objects.filter(reason="trip_start", status=C.SUCCEEDED).exists(),
        what="the start's unlock",
    )
    key = selectors.trip_key_for_booking(booking_id=booking.pk)
    # Locked by hand; the car takes 10 s to act, so every press arrives while the unlock is out.
    sim.set_state(sim_vehicle_id, is_locked=True, latency_ms=10_000)
    before = len(sim.vehicle(sim_vehicle_id)["commands"])
    token = session_token(Client(), renter)
    url = f"/api/v1/keys/{key.public_id}/unlock"

    def press(i: int) -> tuple[int, dict[str, Any]]:
        response = Client().post(url, headers={"X-Session-Token": token})
        return response.status_code, response.json()

    outcomes = at_once(press)

    assert [o for o in outcomes if not isinstance(o, tuple)] == []
    assert sorted(status for status, _ in outcomes) == [202] * PRESSES, outcomes
    command = VehicleCommand.objects.get(car=connected_car, reason="renter")
    assert {body["command"]["id"] for _, body in outcomes} == {str(command.public_id)}
    wait_for(
        lambda: VehicleCommand.objects.filter(pk=command.pk, status=C.SUCCEEDED).exists(),
        what="the unlock to reach the car",
        timeout=30,
    )
    sent = [c["action"] for c in sim.vehicle(sim_vehicle_id)["commands"][before:]]
    assert sent == ["UNLOCK"]


@pytest.mark.django_db(transaction=True)
def test_the_renter_and_the_owner_pressing_at_once_never_deadlock(
    transactional_db, active_trip_key, renter, owner
):
    """Renter's Unlock against the owner's Lock now, together: the press locked its key, then
    the car; the owner the car, then (through the audit row naming the key in use) the key."""
    car = active_trip_key.car

    def press(i: int) -> VehicleCommand:
        if i % 2:
            return use.car_command_request(key=active_trip_key, user=renter, action="unlock")
        return use.car_command_request(car=car, user=owner, action="lock")

    outcomes = at_once(press)

    assert [o for o in outcomes if not isinstance(o, VehicleCommand)] == []
    # The latest wish stands; every one before it yielded to a newer one before it was sent.
    assert VehicleCommand.objects.filter(car=car, status__in=[C.QUEUED, C.SENT]).count() == 1
    assert AuditEntry.objects.filter(actor__in=[renter, owner], allowed=True).count() == PRESSES


# --- The unlock limits: accepted commands in a sliding window ------------------------------------


def unlock_anew(key, user) -> VehicleCommand:
    """An unlock that is a new command: the Lock before it replaces any unlock still queued."""
    use.car_command_request(key=key, user=user, action="lock")
    return use.car_command_request(key=key, user=user, action="unlock")


def rate_limited(key, user) -> errors.KeyRefused:
    with pytest.raises(errors.KeyRefused) as caught:
        unlock_anew(key, user)
    assert caught.value.code == "rate_limited"
    return caught.value


def test_the_window_slides_over_a_fixed_window_edge(active_trip_key, renter, settings, clock):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (3, 60)
    # Two seconds before a minute's edge (the fixed windows of 60 s started on those).
    edge = (int(active_trip_key.valid_from.timestamp()) // 60 + 1) * 60
    start = datetime.datetime.fromtimestamp(edge - 2, tz=datetime.UTC)
    for moment in (start, start + S, start + 1.5 * S):
        clock.move_to(moment, tick=False)
        unlock_anew(active_trip_key, renter)

    clock.move_to(start + 3 * S, tick=False)  # just past the edge
    refusal = rate_limited(active_trip_key, renter)
    assert refusal.retry_after == 57  # when the first of the three leaves the window
    assert "try again in 57 seconds" in str(refusal)

    clock.move_to(start + 60 * S, tick=False)
    assert unlock_anew(active_trip_key, renter).action == "unlock"
    rate_limited(active_trip_key, renter)  # the other two are still inside


def test_refused_and_joined_presses_cost_nothing(trip_key, renter, settings, clock):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (2, 60)
    clock.move_to(trip_key.valid_from - datetime.timedelta(hours=1), tick=False)
    for _ in range(3):  # too early: refused, and not counted
        with pytest.raises(errors.KeyRefused, match="works from"):
            use.car_command_request(key=trip_key, user=renter, action="unlock")

    clock.move_to(trip_key.valid_from, tick=False)
    first = use.car_command_request(key=trip_key, user=renter, action="unlock")
    for _ in range(5):  # the same unlock, still on its way: joined, not counted
        assert use.car_command_request(key=trip_key, user=renter, action="unlock") == first
    assert unlock_anew(trip_key, renter) != first  # the second of two
    rate_limited(trip_key, renter)
    assert AuditEntry.objects.filter(actor=renter, code="rate_limited").count() == 1


def test_a_full_car_bucket_does_not_spend_the_persons(
    active_trip_key, shared_key, renter, co_driver, settings
):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (2, 60)
    settings.KEY_UNLOCK_RATE_PER_CAR = (2, 60)
    unlock_anew(shared_key, co_driver)
    unlock_anew(shared_key, co_driver)
    rate_limited(active_trip_key, renter)  # the car's budget is spent, not the renter's
    settings.KEY_UNLOCK_RATE_PER_CAR = (10, 60)
    unlock_anew(active_trip_key, renter)
    unlock_anew(active_trip_key, renter)
    rate_limited(active_trip_key, renter)


def test_whoever_joined_a_command_follows_it_and_a_stranger_gets_404(
    active_trip_key, shared_key, renter, co_driver, stranger
):
    unlock = unlock_anew(active_trip_key, renter)
    joined = use.car_command_request(key=shared_key, user=co_driver, action="unlock")
    assert joined == unlock  # the renter's unlock, on its way: the co-driver's press joined it
    assert vehicle_selectors.command_for_owner(user=co_driver, public_id=unlock.public_id) == unlock
    with pytest.raises(Http404):
        vehicle_selectors.command_for_owner(user=stranger, public_id=unlock.public_id)
    entry = AuditEntry.objects.filter(actor=co_driver).get()
    assert (entry.key, entry.allowed, entry.command_public_id) == (
        shared_key,
        True,
        unlock.public_id,
    )
