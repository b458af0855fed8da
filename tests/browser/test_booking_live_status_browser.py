"""An open trip page follows the trip: left open on a confirmed trip, it turns to "On the road"
at the start, without a reload, and its "Cancel booking…" goes. "End trip now" then asks in
place before it ends the trip."""

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


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile("Email", re.I)).fill(email)
    page.get_by_label(re.compile("^Password", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    expect(page.get_by_role("button", name=re.compile("Sign out", re.I))).to_be_visible()


def test_an_open_trip_page_turns_active_at_the_start(
    page: Page, live_server, settings, renter, instant_car, time_machine
) -> None:
    settings.BOOKING_PAGE_POLL_SECONDS = 1  # the page asks every second: the test stays short
    starts_at = (timezone.now() + datetime.timedelta(minutes=10)).replace(microsecond=0)
    booking = request_booking(instant_car, renter, starts_at=starts_at, hours=2)
    assert booking.status == BookingStatus.CONFIRMED  # instant book

    sign_in(page, live_server.url, renter.email)
    page.goto(f"{live_server.url}{booking.get_absolute_url()}")
    status = page.locator("#booking-status")
    expect(status).to_contain_text("Confirmed")
    expect(status.get_by_role("link", name="Cancel booking…")).to_be_visible()
    page.evaluate("window.carshareNotReloaded = true")

    # The start, while the page stays open: the trip clock moves the booking.
    time_machine.move_to(starts_at + datetime.timedelta(seconds=1), tick=True)
    assert booking_services.booking_start(booking_id=booking.pk) is not None

    expect(status).to_contain_text("On the road", timeout=10_000)
    expect(status.get_by_role("link", name="Cancel booking…")).to_have_count(0)
    expect(status.get_by_role("button", name="End trip now")).to_be_visible()
    assert page.evaluate("window.carshareNotReloaded") is True

    status.get_by_role("button", name="End trip now").click()
    expect(status).to_contain_text("End the trip now?")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.ACTIVE  # the question only
    status.get_by_role("button", name="Yes, end the trip").click()
    expect(status).to_contain_text("Completed")
    assert page.evaluate("window.carshareNotReloaded") is True
    booking.refresh_from_db()
    assert booking.status == BookingStatus.COMPLETED
