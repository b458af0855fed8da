"""A whole trip with a real Celery worker, real Redis and the real simulator, under controlled
time: confirmed → the car unlocks at the start → the renter locks and unlocks from the key's page
→ a co-driver unlocks with a shared key, and is refused once it is revoked → the car locks at
the end → after the grace the keys are expired.

Time: time-machine moves the clock of this whole process, the worker's threads included (it
ticks, so the worker's own timeouts keep running). The trip clock and the key clock are run here
rather than waited for: the ETA tasks they would have scheduled wait in real time. The simulator
keeps its own clock and needs nothing from us: its access tokens outlive nothing we do here
(the app refreshes them when its own clock says they expired, and the simulator's refresh tokens
last 60 of its days).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from bookings import tasks as booking_tasks
from bookings.models import BookingStatus
from keys import grants, selectors
from keys import tasks as key_tasks
from keys.models import DigitalKey, EndLock
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.keys.helpers import wait_for
from vehicles.models import CommandStatus, VehicleCommand

HTMX = {"HX-Request": "true"}


def car_locked(sim, vehicle_id: str) -> bool:
    return sim.vehicle(vehicle_id)["is_locked"]


def press(client, key: DigitalKey, action: str):
    """The Unlock or Lock button of the key's page (htmx): the answer is the progress fragment."""
    response = client.post(reverse(f"keys:key_{action}", args=[key.public_id]), headers=HTMX)
    assert response.status_code == 200
    return response


def follow(client, response) -> VehicleCommand:
    """Poll the progress fragment as the page does, until the command is done."""
    found = re.search(r'id="command-([0-9a-f-]{36})"', response.content.decode())
    assert found, response.content.decode()
    url = reverse("keys:key_command_status", args=[found.group(1)])

    def done() -> bool:
        page = client.get(url, headers=HTMX)
        assert page.status_code == 200
        return 'hx-trigger="every 2s"' not in page.content.decode()

    wait_for(done, what=f"the {found.group(1)} command to finish")
    return VehicleCommand.objects.get(public_id=found.group(1))


@pytest.mark.django_db(transaction=True)
def test_a_whole_trip(
    celery_worker_thread,
    connected_car,
    sim,
    sim_vehicle_id,
    owner,
    renter,
    co_driver,
    client,
    time_machine,
    mailoutbox,
):
    # Booked for tomorrow (instant book): the renter holds an issued trip key.
    booking = request_booking(connected_car, renter, starts_at=hour_from_now(days=1), hours=2)
    assert booking.status == BookingStatus.CONFIRMED
    key = selectors.trip_key_for_booking(booking_id=booking.pk)
    assert key.status == "issued"
    sim.set_state(sim_vehicle_id, is_locked=True)  # parked and locked by the owner

    # The start: the trip clock opens the key and the worker unlocks the car.
    time_machine.move_to(booking.starts_at, tick=True)
    booking_tasks.run_trip_clock()
    wait_for(lambda: not car_locked(sim, sim_vehicle_id), what="the car to unlock at the start")
    unlock = VehicleCommand.objects.get(reason="trip_start")
    wait_for(
        lambda: VehicleCommand.objects.filter(pk=unlock.pk, confirmed_at__isnull=False).exists(),
        what="the start's unlock to be confirmed",
    )
    key.refresh_from_db()
    assert key.status == "active"

    # The renter locks and unlocks from the key's page.
    client.force_login(renter)
    locked = follow(client, press(client, key, "lock"))
    assert (locked.status, locked.actor, locked.reason) == (
        CommandStatus.SUCCEEDED,
        renter,
        "renter",
    )
    assert car_locked(sim, sim_vehicle_id) is True
    unlocked = follow(client, press(client, key, "unlock"))
    assert unlocked.status == CommandStatus.SUCCEEDED
    assert car_locked(sim, sim_vehicle_id) is False
    follow(client, press(client, key, "lock"))
    assert car_locked(sim, sim_vehicle_id) is True

    # A co-driver opens the car with a shared key...
    shared = grants.key_share(key=key, user=renter, email=co_driver.email)
    wait_for(
        lambda: any(co_driver.email in m.to for m in mailoutbox),
        what="the co-driver's key email",
    )
    client.force_login(co_driver)
    by_co_driver = follow(client, press(client, shared, "unlock"))
    assert (by_co_driver.status, by_co_driver.actor) == (CommandStatus.SUCCEEDED, co_driver)
    assert car_locked(sim, sim_vehicle_id) is False

    # ...and not once the renter takes it back.
    grants.key_revoke(key=shared, user=renter)
    refused = press(client, shared, "unlock")
    assert "This key was revoked." in refused.content.decode()
    assert not VehicleCommand.objects.filter(actor=co_driver).exclude(pk=by_co_driver.pk).exists()

    # The end: the trip clock ends the trip and the worker locks the car.
    time_machine.move_to(booking.ends_at, tick=True)
    booking_tasks.run_trip_clock()
    wait_for(lambda: car_locked(sim, sim_vehicle_id), what="the car to lock at the end")
    end_lock = EndLock.objects.get(key=key)
    wait_for(
        lambda: VehicleCommand.objects.filter(
            pk=end_lock.command_id, confirmed_at__isnull=False
        ).exists(),
        what="the end lock to be confirmed",
    )
    key_tasks.run_key_clock()
    end_lock.refresh_from_db()
    assert end_lock.status == "locked"
    client.force_login(renter)
    too_late = press(client, key, "unlock")
    assert "you can only lock the car" in too_late.content.decode()

    # After the grace: the keys are over.
    key.refresh_from_db()
    time_machine.move_to(key.lock_until, tick=True)
    key_tasks.run_key_clock()
    key.refresh_from_db()
    shared.refresh_from_db()
    assert (key.status, shared.status) == ("expired", "revoked")
    assert "This key has expired." in press(client, key, "lock").content.decode()

    # What the car went through, in order, each exactly once.
    car_log = [(c["action"], c["result"]) for c in sim.vehicle(sim_vehicle_id)["commands"]]
    assert car_log == [
        ("UNLOCK", "success"),  # the trip starts
        ("LOCK", "success"),  # the renter
        ("UNLOCK", "success"),
        ("LOCK", "success"),
        ("UNLOCK", "success"),  # the co-driver
        ("LOCK", "success"),  # the trip ends
    ]
