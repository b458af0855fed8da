"""A renter requests a connected car that is not instant-book, its owner approves the request
from "Requests and bookings" in a browser of their own, and the renter finds the trip confirmed
among the upcoming ones in "My trips"."""

from __future__ import annotations

import datetime
import re
import zoneinfo

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from bookings.models import Booking, BookingStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # UserFactory's (RenterFactory inherits it)


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile("Email", re.I)).fill(email)
    page.get_by_label(re.compile("^Password", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    expect(page.get_by_role("button", name=re.compile("Sign out", re.I))).to_be_visible()


def test_owner_approves_and_the_renter_sees_the_trip_confirmed(
    page: Page,
    browser: Browser,
    browser_context_args: dict,
    live_server,
    owner,
    renter,
    bookable_car,
) -> None:
    car = bookable_car
    car.instant_book = False
    car.save(update_fields=["instant_book"])
    zone = zoneinfo.ZoneInfo(car.time_zone)
    starts_at = (timezone.now() + datetime.timedelta(days=3)).astimezone(zone)
    starts_at = starts_at.replace(hour=9, minute=0, second=0, microsecond=0)
    ends_at = starts_at + datetime.timedelta(hours=4)

    # The renter asks for the car.
    sign_in(page, live_server.url, renter.email)
    page.goto(f"{live_server.url}{car.get_absolute_url()}")
    expect(page.get_by_role("heading", name="Request this car")).to_be_visible()
    quote = page.locator("#booking-quote")
    expect(quote).to_contain_text("Free the whole time")  # the htmx load has landed
    page.get_by_label("Start").fill(starts_at.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("End").fill(ends_at.strftime("%Y-%m-%dT%H:%M"))
    expect(quote).to_contain_text("€32.00")  # 4 h at €8
    expect(quote).to_contain_text("Available")
    page.get_by_role("button", name="Request to book").click()
    expect(page.locator("#booking-status")).to_contain_text("Waiting for the owner")
    booking = Booking.objects.get(renter=renter)
    assert booking.status == BookingStatus.REQUESTED

    # The owner, in a browser of their own, approves it.
    owner_context = browser.new_context(**browser_context_args)
    try:
        owner_page = owner_context.new_page()
        sign_in(owner_page, live_server.url, owner.email)
        main_nav = owner_page.get_by_role("navigation", name="Main")
        main_nav.get_by_role("link", name="Requests and bookings").click()
        expect(owner_page.get_by_role("heading", name="Requests and bookings")).to_be_visible()
        waiting = owner_page.get_by_role("region", name="Waiting for your answer")
        expect(waiting.get_by_role("link", name=re.compile(re.escape(car.title)))).to_be_visible()
        waiting.get_by_role(
            "button", name=re.compile(rf"^Approve {renter.get_full_name()}")
        ).click()
        expect(owner_page.get_by_text("Approved: the renter has been told.")).to_be_visible()
        expect(owner_page.locator("#booking-status")).to_contain_text("Confirmed")
    finally:
        owner_context.close()

    # The renter reloads "My trips": the trip is confirmed and coming up.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My trips").click()
    expect(page.get_by_role("heading", name="My trips", level=1)).to_be_visible()
    page.reload()
    upcoming = page.get_by_role("region", name="Upcoming")
    trip = upcoming.get_by_role("article").filter(
        has=page.get_by_role("link", name=re.compile(re.escape(car.title)))
    )
    expect(trip).to_have_count(1)
    expect(trip).to_contain_text("Confirmed")
    expect(trip).to_contain_text(starts_at.strftime("%H:%M"))
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
