"""The owner's private iCal feed: RFC 5545 output and the token in its URL."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from bookings import ical, services
from keys import grants
from tests.bookings.fixtures_bookings import hour_from_now
from tests.factories import CarFactory, UserFactory

UTC = datetime.UTC
H = datetime.timedelta(hours=1)


def feed_url(car, token: str | None = None) -> str:
    return reverse("bookings:car_ical", args=[car.public_id, token or ical.feed_token(car)])


def unfold(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")


# --- the format ------------------------------------------------------------------------------


def test_lines_are_folded_at_75_octets_without_splitting_characters():
    line = "SUMMARY:" + "Ünïcødé car, trip; " * 20
    folded = ical._fold(line)
    parts = folded.split("\r\n ")
    assert len(parts) > 1
    assert all(len(part.encode()) <= 75 for part in parts[:1])
    assert all(len(part.encode()) <= 74 for part in parts[1:])  # plus the leading space
    assert "".join(parts) == line


def test_short_lines_are_not_folded():
    assert ical._fold("VERSION:2.0") == "VERSION:2.0"


def test_text_is_escaped():
    assert ical._text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"


def test_render_calendar_writes_utc_times_and_crlf():
    car = CarFactory.build(make="VOLKSWAGEN", model="Golf")
    starts = datetime.datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
    event = ical.Event(
        uid="booking-1@carshare",
        starts_at=starts,
        ends_at=starts + datetime.timedelta(hours=3),
        summary="Golf: Confirmed",
    )
    text = ical.render_calendar(car, [event], now=starts)
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:")
    assert text.endswith("END:VCALENDAR\r\n")
    assert "\n" not in text.replace("\r\n", "")  # CRLF only
    lines = unfold(text)
    assert "DTSTART:20300601T080000Z" in lines
    assert "DTEND:20300601T110000Z" in lines
    assert "DTSTAMP:20300601T080000Z" in lines
    assert "UID:booking-1@carshare" in lines


def test_token_depends_on_the_car_and_the_secret_key(settings):
    one, two = CarFactory.build(), CarFactory.build()
    assert ical.feed_token(one) != ical.feed_token(two)
    before = ical.feed_token(one)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert ical.feed_token(one) != before


# --- the feed through HTTP -------------------------------------------------------------------


@pytest.mark.django_db
def test_feed_serves_bookings_and_blocks(client, owner, confirmed_booking):
    car = confirmed_booking.car
    block = services.block_create(
        car=car,
        user=owner,
        starts_at=hour_from_now(days=6),
        ends_at=hour_from_now(days=6, hours=2),
        reason="maintenance",
        note="Oil change",
    )
    response = client.get(feed_url(car))  # no sign-in: calendar apps cannot
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    lines = unfold(response.content.decode())
    assert f"UID:booking-{confirmed_booking.public_id}@carshare" in lines
    assert f"UID:block-{block.public_id}@carshare" in lines
    assert f"DTSTART:{confirmed_booking.starts_at.astimezone(UTC):%Y%m%dT%H%M%SZ}" in lines
    assert f"DTEND:{confirmed_booking.ends_at.astimezone(UTC):%Y%m%dT%H%M%SZ}" in lines
    assert "DESCRIPTION:Oil change" in lines
    assert lines.count("BEGIN:VEVENT") == 2


@pytest.mark.django_db
def test_request_is_tentative(client, requested_booking):
    lines = unfold(client.get(feed_url(requested_booking.car)).content.decode())
    assert "STATUS:TENTATIVE" in lines


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["", "0" * 40, "not-the-token"])
def test_wrong_token_is_404(client, car, token):
    url = reverse("bookings:car_ical", args=[car.public_id, token or "x"])
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_unknown_car_is_404(client, car):
    other = CarFactory.build()
    assert client.get(feed_url(other, ical.feed_token(other))).status_code == 404


@pytest.mark.django_db
def test_cancelled_booking_leaves_the_feed(client, confirmed_booking, renter):
    services.booking_cancel(booking=confirmed_booking, user=renter)
    text = client.get(feed_url(confirmed_booking.car)).content.decode()
    assert "BEGIN:VEVENT" not in text


def test_feed_shows_service_windows_with_who_and_note(client, owner, confirmed_booking):
    car = confirmed_booking.car
    technician = UserFactory(email="tech@example.test", name="Tina Technician")
    start = hour_from_now(days=6)
    window = grants.service_key_issue(
        car=car,
        user=owner,
        email=technician.email,
        starts_at=start,
        ends_at=start + 2 * H,
        note="New tyres",
    )
    lines = unfold(client.get(feed_url(car)).content.decode())
    assert f"UID:service-{window.public_id}@carshare" in lines
    assert f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}" in lines
    assert f"DTEND:{(start + 2 * H).astimezone(UTC):%Y%m%dT%H%M%SZ}" in lines
    assert f"SUMMARY:{ical._text(car.title)}: Service (Tina Technician)" in lines
    assert "DESCRIPTION:New tyres" in lines
    assert lines.count("BEGIN:VEVENT") == 2
