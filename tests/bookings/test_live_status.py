"""An open trip page follows the trip: its status region is polled while something can change
(requested, confirmed, active, an end lock still pending) and answers 204 while nothing did. A
car that would not lock at the end shows on the trip page, and a stale "Doors: Closed" never
stands beside the car's "a door is open"."""

from __future__ import annotations

import datetime
import html as html_lib
import re

import pytest
from django.test import Client
from django.urls import reverse

from bookings import services
from bookings.models import Booking, BookingStatus
from keys.models import EndLock
from vehicles import commands as vehicle_commands
from vehicles import tasks as vehicle_tasks
from vehicles.models import CommandStatus, VehicleCommand, VehicleStatus

pytestmark = pytest.mark.django_db

B = BookingStatus
HTMX = {"HX-Request": "true"}
DOOR_OPEN = {"endpoint": "security", "type": "VEHICLE_STATE", "code": "DOOR_OPEN", "count": 1}
DOOR_OPEN_WORDS = "The car could not lock: a door is open — close it and press Lock."


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def status_poll(html: str) -> tuple[str, str] | None:
    """The status region's polling URL and interval, or None when it does not poll."""
    section = re.search(r'<section id="booking-status"[^>]*>', html)
    assert section, html
    url = re.search(r'hx-get="([^"]+)"', section.group(0))
    every = re.search(r'hx-trigger="every (\d+)s"', section.group(0))
    if url is None:
        assert every is None
        return None
    assert every is not None
    return html_lib.unescape(url.group(1)), every.group(1)


def test_an_open_page_sees_the_trip_start_without_reloading(confirmed_booking, renter, clock):
    clock.move_to(confirmed_booking.starts_at - datetime.timedelta(minutes=20), tick=False)
    client = as_user(renter)
    page = client.get(confirmed_booking.get_absolute_url()).content.decode()
    assert "<strong>Confirmed</strong>" in page
    assert "Cancel booking…" in page
    poll = status_poll(page)
    assert poll is not None
    url, every = poll
    assert url.startswith(reverse("bookings:booking_status", args=[confirmed_booking.public_id]))
    assert every == "5"  # starting soon: often

    # Nothing changed yet: the poll costs a 204 and swaps nothing.
    unchanged = client.get(url, headers=HTMX)
    assert unchanged.status_code == 204
    assert "HX-Request" in unchanged["Vary"]

    # The start: the trip clock moves it on the second, while the page stays open.
    clock.move_to(confirmed_booking.starts_at, tick=False)
    assert services.booking_start(booking_id=confirmed_booking.pk) is not None
    response = client.get(url, headers=HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section id="booking-status"')
    assert "<strong>On the road</strong>" in fragment
    assert "Confirmed" not in fragment
    assert "Cancel booking" not in fragment
    assert "End trip now" in fragment
    assert "booking-changed" in response["HX-Trigger"]  # the key panel and history follow
    assert "HX-Request" in response["Vary"]
    assert status_poll(fragment) is not None  # under way: still followed
    # The same URL without htmx is the whole page.
    assert "<html" in client.get(url).content.decode()


def test_a_trip_far_off_is_followed_now_and_then_and_a_cancelled_one_not_at_all(
    confirmed_booking, renter
):
    client = as_user(renter)
    poll = status_poll(client.get(confirmed_booking.get_absolute_url()).content.decode())
    assert poll is not None
    assert poll[1] == "60"
    services.booking_cancel(booking=confirmed_booking, user=renter)
    page = client.get(confirmed_booking.get_absolute_url()).content.decode()
    assert status_poll(page) is None


def test_strangers_get_404_from_the_status_region(confirmed_booking, stranger):
    url = reverse("bookings:booking_status", args=[confirmed_booking.public_id])
    assert as_user(stranger).get(url, headers=HTMX).status_code == 404


@pytest.fixture
def door_open_at_the_end(active_booking, clock, sim, sim_vehicle_id) -> Booking:
    """The car's last status read says the doors are closed; the trip ends and its end lock is
    refused by the car: a door is open."""
    vehicle_commands.vehicle_status_request_refresh(car_id=active_booking.car_id)
    vehicle_tasks.refresh_vehicle_status(car_id=active_booking.car_id)
    assert VehicleStatus.objects.get(car_id=active_booking.car_id).doors_open is False
    clock.move_to(active_booking.ends_at, tick=False)
    services.booking_complete(booking_id=active_booking.pk)
    end_lock = EndLock.objects.get()
    sim.fault(sim_vehicle_id, **DOOR_OPEN)
    vehicle_tasks.run_vehicle_command(command_id=end_lock.command_id)
    failed = VehicleCommand.objects.get(pk=end_lock.command_id)
    assert (failed.status, failed.error_code) == (CommandStatus.FAILED, "DOOR_OPEN")
    return active_booking


def doors_row(html: str) -> str:
    row = re.search(r"<dt>Doors</dt>\s*<dd>(.*?)</dd>", html, re.S)
    assert row, "no Doors row"
    return row.group(1)


def test_the_trip_page_says_the_car_did_not_lock_and_why(door_open_at_the_end, renter, owner):
    booking = door_open_at_the_end
    for user in (renter, owner):
        page = as_user(user).get(booking.get_absolute_url()).content.decode()
        assert "<strong>Completed</strong>" in page
        assert DOOR_OPEN_WORDS in html_lib.unescape(page), user
        assert "carshare keeps trying every few minutes" in page
        assert status_poll(page) is not None  # until the car reports itself locked
    owner_page = as_user(owner).get(booking.get_absolute_url()).content.decode()
    assert booking.car.get_absolute_url() in owner_page  # where the owner's Lock is


def test_no_doors_closed_beside_a_door_open_refusal(door_open_at_the_end, renter, owner):
    booking = door_open_at_the_end
    # The renter's key may still lock for a while: its panel shows the car's status.
    renter_page = as_user(renter).get(booking.get_absolute_url()).content.decode()
    owner_car_page = as_user(owner).get(booking.car.get_absolute_url()).content.decode()
    for html in (renter_page, owner_car_page):
        doors = doors_row(html)
        assert "Closed" not in doors
        assert "Open" in doors


def test_the_message_goes_once_the_car_is_locked(door_open_at_the_end, renter, clock):
    booking = door_open_at_the_end
    client = as_user(renter)
    url, _ = status_poll(client.get(booking.get_absolute_url()).content.decode())
    # The renter closes the door and presses Lock; the sweep sees the car locked.
    from keys import endlocks, use
    from keys.models import DigitalKey

    key = DigitalKey.objects.get(booking_id=booking.pk, kind="trip")
    command = use.car_command_request(key=key, user=renter, action="lock", via="web")
    vehicle_tasks.run_vehicle_command(command_id=command.pk)
    endlocks.end_lock_check(end_lock_id=EndLock.objects.get().pk)
    response = client.get(url, headers=HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200
    assert "could not lock" not in fragment
    assert status_poll(fragment) is None  # nothing more can change: polling stops
