"""During a trip the renter opens the car from the trip page: Unlock shows its progress until the
car has done it, and the simulated car is unlocked; Lock locks it again. A real Celery worker
carries the commands to the simulator."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from bookings import services as booking_services
from bookings.models import BookingStatus
from tests.bookings.fixtures_bookings import request_booking

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # UserFactory's (RenterFactory inherits it)
# Time for the worker to send the command and confirm it with the car (instant simulator).
COMMAND_TIMEOUT_MS = 20_000


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile("Email", re.I)).fill(email)
    page.get_by_label(re.compile("^Password", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    expect(page.get_by_role("button", name=re.compile("Sign out", re.I))).to_be_visible()


def test_renter_unlocks_and_locks_from_the_trip_page(
    page: Page,
    live_server,
    sim,
    renter,
    connected_car,
    sim_vehicle_id,
    time_machine,
    celery_worker_thread,
) -> None:
    car = connected_car
    car.unlock_at_start = False  # the renter's press is what opens it
    car.save(update_fields=["unlock_at_start"])
    sim.set_state(sim_vehicle_id, is_locked=True)
    starts_at = (timezone.now() + datetime.timedelta(minutes=2)).replace(microsecond=0)
    booking = request_booking(car, renter, starts_at=starts_at, hours=2)
    assert booking.status == BookingStatus.CONFIRMED  # instant book
    # The trip has begun: the clock moves to the start (and keeps ticking for the worker).
    time_machine.move_to(starts_at + datetime.timedelta(seconds=1), tick=True)
    assert booking_services.booking_start(booking_id=booking.pk) is not None

    sign_in(page, live_server.url, renter.email)
    page.goto(f"{live_server.url}{booking.get_absolute_url()}")
    panel = page.locator("#key-panel")
    expect(panel).to_contain_text("Digital key")
    progress = page.locator("#key-command-slot")

    panel.get_by_role("button", name="Unlock", exact=True).click()
    expect(progress).to_contain_text("Unlock:")
    expect(progress).to_contain_text("Done", timeout=COMMAND_TIMEOUT_MS)
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False
    # The live status hears the command finish and reads what the car reported.
    expect(page.locator("#key-live")).to_contain_text("Unlocked", timeout=COMMAND_TIMEOUT_MS)

    panel.get_by_role("button", name="Lock", exact=True).click()
    expect(progress).to_contain_text("Lock:")
    expect(progress).to_contain_text("Done", timeout=COMMAND_TIMEOUT_MS)
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True
    expect(page.locator("#key-live")).to_contain_text("Locked", timeout=COMMAND_TIMEOUT_MS)
