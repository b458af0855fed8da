"""At a car that won't open, on a phone: the trip page shows each attempt to reach the car live,
the renter says "I'm at the car and it won't open" (carshare tries again at once and asks the
owner), sees the owner's fallback, and the page says when the car opened. The owner's one-tap
unlock from the email, in a browser of their own. A real Celery worker carries every command to
the simulator; the retry pauses are shortened so that the car's seconds pass in a test.
"""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from bookings import services as booking_services
from keys import selectors
from keys import tasks as key_tasks
from keys.models import StartUnlock
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.browser.test_key_unlock_browser import sign_in
from tests.keys.helpers import wait_for
from vehicles import services as car_services
from vehicles.cloud import sending
from vehicles.models import CommandReason, VehicleCommand

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 20_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def stuck_start(
    celery_worker_thread, connected_car, renter, sim, sim_vehicle_id, time_machine, monkeypatch
):
    """A trip just started on a car that cannot be reached; the worker keeps trying (it starts
    first: it empties the queues of messages left by earlier tests)."""
    monkeypatch.setitem(sending.START_STATE_PAUSES_S, "UNREACHABLE", (3.0, 3.0, 3.0))
    monkeypatch.setattr("vehicles.cloud.sending.command_min_interval", lambda make: 1.0)
    monkeypatch.setattr("vehicles.commands.command_min_interval", lambda make: 1.0)
    car_services.car_update(car=connected_car, data={"fallback": "Lockbox by the gate: 4711"})
    sim.set_state(sim_vehicle_id, is_locked=True, reachable=False)
    # A day ahead, so that the unlock is queued by the start itself (a trip within the hour has
    # it staged with a countdown in real seconds, which a moved clock does not shorten).
    booking = request_booking(connected_car, renter, starts_at=hour_from_now(days=1), hours=2)
    time_machine.move_to(booking.starts_at + datetime.timedelta(seconds=1), tick=True)
    assert booking_services.booking_start(booking_id=booking.pk) is not None
    return booking


def test_the_renter_climbs_the_ladder_at_a_car_that_will_not_open(
    page: Page, live_server, sim, sim_vehicle_id, renter, stuck_start, celery_worker_thread
) -> None:
    sign_in(page, live_server.url, renter.email)
    page.goto(f"{live_server.url}{stuck_start.get_absolute_url()}")
    start = page.locator("#key-start")

    # Each attempt, live, in words (never the cloud's codes).
    expect(start).to_contain_text("Trying to reach your car…", timeout=TIMEOUT_MS)
    expect(start).to_contain_text(re.compile(r"attempt [2-9]"), timeout=TIMEOUT_MS)
    expect(start).not_to_contain_text("VEHICLE_STATE")

    # Rung 1 and 2: at the car.
    at_car = page.get_by_role("button", name="I'm at the car and it won't open")
    expect(at_car).to_be_visible()
    at_car.click()
    expect(start).to_contain_text("to unlock it and to call you", timeout=TIMEOUT_MS)
    assert StartUnlock.objects.get(key__booking_id=stuck_start.pk).owner_asked_at is not None

    # Rung 3: the owner's fallback, shown in place and kept on screen while the page polls.
    page.get_by_role("button", name=re.compile("Show the owner's fallback")).click()
    fallback = page.locator("#key-fallback")
    expect(fallback).to_contain_text("Lockbox by the gate: 4711", timeout=TIMEOUT_MS)

    # The car comes back into coverage: the next attempt opens it, and the page says so.
    sim.set_state(sim_vehicle_id, reachable=True)
    wait_for(
        lambda: VehicleCommand.objects.filter(
            reason=CommandReason.TRIP_START, confirmed_at__isnull=False
        ).exists(),
        what="the start's unlock to reach the car",
        timeout=TIMEOUT_MS / 1000,
    )
    key_tasks.run_key_clock()
    expect(start).to_contain_text("The car opened for your trip", timeout=TIMEOUT_MS)
    expect(fallback).to_contain_text("4711")
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False


def test_the_owner_unlocks_for_the_renter_in_one_tap(
    browser: Browser, live_server, sim, sim_vehicle_id, owner, stuck_start, celery_worker_thread
) -> None:
    key = selectors.trip_key_for_booking(booking_id=stuck_start.pk)
    sim.set_state(sim_vehicle_id, reachable=True)  # the owner's own unlock reaches the car
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sign_in(page, live_server.url, owner.email)

    page.goto(f"{live_server.url}{reverse('keys:start_rescue', args=[key.public_id])}")
    expect(page.get_by_text(re.compile("is at the car and it will not open"))).to_be_visible()
    page.get_by_role("button", name="Unlock now").click()

    expect(page).to_have_url(re.compile(reverse("keys:car_keys", args=[key.car.public_id])))
    wait_for(
        lambda: VehicleCommand.objects.filter(
            reason=CommandReason.OWNER, action="unlock", confirmed_at__isnull=False
        ).exists(),
        what="the owner's unlock to reach the car",
        timeout=TIMEOUT_MS / 1000,
    )
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False
    context.close()
