"""A renter books a connected instant-book car: picks times, sees the price, books, and finds
the trip confirmed on its page."""

from __future__ import annotations

import datetime
import re
import zoneinfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from bookings.models import Booking, BookingStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # UserFactory's


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile("Email", re.I)).fill(email)
    page.get_by_label(re.compile("^Password", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    expect(page.get_by_role("button", name=re.compile("Sign out", re.I))).to_be_visible()


def test_renter_books_an_instant_car(page: Page, live_server, renter, instant_car) -> None:
    car = instant_car
    assert car.instant_book
    zone = zoneinfo.ZoneInfo(car.time_zone)
    starts_at = (timezone.now() + datetime.timedelta(days=2)).astimezone(zone)
    starts_at = starts_at.replace(hour=10, minute=0, second=0, microsecond=0)
    ends_at = starts_at + datetime.timedelta(hours=3)

    sign_in(page, live_server.url, renter.email)
    page.goto(f"{live_server.url}{car.get_absolute_url()}")
    booking_panel = page.locator("#booking")
    expect(booking_panel).to_contain_text(car.time_zone)
    # The busy times arrive by htmx once the page has loaded.
    expect(page.locator("#booking-quote")).to_contain_text("Free the whole time")

    page.get_by_label("Start").fill(starts_at.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("End").fill(ends_at.strftime("%Y-%m-%dT%H:%M"))
    quote = page.locator("#booking-quote")
    expect(quote).to_contain_text("€24.00")  # 3 h at €8, live, without leaving the page
    expect(quote).to_contain_text("Available")
    assert "/book/" not in page.url

    page.get_by_role("button", name="Book now").click()
    expect(page.get_by_role("heading", name=re.compile("Trip in the"))).to_be_visible()
    expect(page.locator("#booking-status")).to_contain_text("Confirmed")
    expect(page.locator("#booking-status")).to_contain_text("10:00")
    booking = Booking.objects.get(renter=renter)
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.starts_at == starts_at
    assert page.url.endswith(booking.get_absolute_url())
