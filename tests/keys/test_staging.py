"""The unlock at a trip start is staged in the outbox shortly before the start, due at the start:
at that second the vehicle worker only has to send it, however many trips start together, and it
still checks that the key was not revoked. Real PostgreSQL, Redis and simulator."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.test import Client
from django.urls import reverse

from bookings import services as booking_services
from bookings import tasks as booking_tasks
from keys import selectors
from tests.api.conftest import session_token
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from vehicles import commands
from vehicles import tasks as vehicle_tasks
from vehicles.cloud import outbox, sending
from vehicles.models import CommandStatus, VehicleCommand

pytestmark = pytest.mark.django_db

M = datetime.timedelta(minutes=1)
S = datetime.timedelta(seconds=1)
HTMX = {"HX-Request": "true"}


def trip_start_unlocks(booking) -> list[VehicleCommand]:
    key = selectors.trip_key_for_booking(booking_id=booking.pk)
    return list(VehicleCommand.objects.filter(key_id=key.pk, reason="trip_start"))


@pytest.fixture
def soon_booking(instant_car, renter, clock):
    """Confirmed at once (instant book), starting within the hour."""
    starts_at = hour_from_now()
    return request_booking(instant_car, renter, starts_at=starts_at, hours=2)


def test_a_trip_confirmed_within_the_hour_has_its_unlock_staged_for_the_start(soon_booking):
    [unlock] = trip_start_unlocks(soon_booking)
    assert unlock.action == "unlock"
    assert unlock.status == CommandStatus.QUEUED
    assert unlock.next_attempt_at == soon_booking.starts_at
    assert unlock.send_by is None


def test_the_staged_unlock_is_not_sent_before_its_second(soon_booking, clock):
    [unlock] = trip_start_unlocks(soon_booking)
    clock.move_to(soon_booking.starts_at - 5 * S, tick=False)
    assert sending.command_claim(command_id=unlock.pk) is None
    unlock.refresh_from_db()
    assert unlock.status == CommandStatus.QUEUED


def test_at_the_start_it_goes_even_before_the_trip_clock_opened_the_key(soon_booking, clock):
    [unlock] = trip_start_unlocks(soon_booking)
    key = selectors.trip_key_for_booking(booking_id=soon_booking.pk)
    clock.move_to(soon_booking.starts_at, tick=False)
    assert key.status == "issued"  # the trip clock has not come by yet
    assert outbox.command_refusal(unlock, soon_booking.starts_at) is None
    claim = sending.command_claim(command_id=unlock.pk)
    assert claim is not None
    assert claim.action == "unlock"


def test_a_message_a_moment_early_is_judged_at_its_due_second(soon_booking):
    [unlock] = trip_start_unlocks(soon_booking)
    # DUE_TOLERANCE lets a worker take a message up to a second early (clock skew).
    assert outbox.command_refusal(unlock, soon_booking.starts_at - S / 2) is None


def test_the_trip_start_does_not_queue_a_second_unlock(soon_booking, clock):
    clock.move_to(soon_booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=soon_booking.pk)
    assert len(trip_start_unlocks(soon_booking)) == 1


def test_an_earlier_owner_lock_does_not_replace_the_staged_unlock(soon_booking, owner):
    car = soon_booking.car
    lock = commands.vehicle_command_request(car=car, action="lock", reason="owner", actor=owner)
    [unlock] = trip_start_unlocks(soon_booking)
    assert unlock.status == CommandStatus.QUEUED
    # And the staged unlock, made before, did not replace the owner's lock either.
    lock.refresh_from_db()
    assert lock.status == CommandStatus.QUEUED


def test_cancelling_withdraws_the_staged_unlock(soon_booking, renter):
    booking_services.booking_cancel(booking=soon_booking, user=renter)
    [unlock] = trip_start_unlocks(soon_booking)
    assert unlock.status == CommandStatus.EXPIRED
    assert "revoked" in unlock.events.last().note


def test_no_unlock_is_staged_when_the_owner_turned_it_off(instant_car, renter, clock):
    instant_car.unlock_at_start = False
    instant_car.save(update_fields=["unlock_at_start"])
    booking = request_booking(instant_car, renter, starts_at=hour_from_now(), hours=2)
    assert trip_start_unlocks(booking) == []


def test_the_sweep_stages_trips_confirmed_long_ago_once(confirmed_booking, clock):
    assert trip_start_unlocks(confirmed_booking) == []  # three days ahead: nothing yet
    clock.move_to(confirmed_booking.starts_at - 80 * S, tick=False)
    booking_tasks.run_trip_clock()
    booking_tasks.run_trip_clock()  # the next sweep, or a second delivery
    [unlock] = trip_start_unlocks(confirmed_booking)
    assert unlock.next_attempt_at == confirmed_booking.starts_at


def test_the_sweep_leaves_trips_further_ahead_alone(confirmed_booking, clock):
    clock.move_to(confirmed_booking.starts_at - 5 * M, tick=False)
    booking_tasks.run_trip_clock()
    assert trip_start_unlocks(confirmed_booking) == []


def test_the_audit_log_shows_when_the_unlock_was_staged_for_and_when_the_car_opened(
    instant_car, renter, owner, clock, client
):
    """Staged five minutes ahead (a trip confirmed shortly before its start), sent and
    confirmed by the car at the start: the log keeps when it was asked and for when, and shows
    when the car opened."""
    starts_at = hour_from_now(days=1)
    clock.move_to(starts_at - 5 * M, tick=False)
    booking = request_booking(instant_car, renter, starts_at=starts_at, hours=2)
    [unlock] = trip_start_unlocks(booking)

    clock.move_to(starts_at, tick=False)
    vehicle_tasks.run_vehicle_command(command_id=unlock.pk)  # the worker, at the start
    unlock.refresh_from_db()
    assert (unlock.status, unlock.confirmed_at) == (CommandStatus.SUCCEEDED, starts_at)

    clock.move_to(starts_at + 10 * M, tick=False)
    entry = selectors.audit_of_car(car_id=instant_car.pk, limit=None).get(
        via="system", action="unlock"
    )
    assert (entry.at, entry.staged_for, entry.car_confirmed_at) == (
        starts_at - 5 * M,
        starts_at,
        starts_at,
    )

    token = session_token(Client(), owner)
    api = client.get(
        f"/api/v1/cars/{instant_car.public_id}/audit", headers={"X-Session-Token": token}
    )
    [row] = [r for r in api.json()["results"] if r["via"] == "system" and r["action"] == "unlock"]
    zone = zoneinfo.ZoneInfo(instant_car.time_zone)
    assert (row["at"], row["staged_for"], row["car_confirmed_at"]) == (
        (starts_at - 5 * M).astimezone(zone).isoformat(),
        starts_at.astimezone(zone).isoformat(),
        starts_at.astimezone(zone).isoformat(),
    )

    client.force_login(owner)
    page = client.get(reverse("keys:car_audit", args=[instant_car.public_id]), headers=HTMX)
    html = " ".join(page.content.decode().split())
    local = starts_at.astimezone(zone)
    asked = (starts_at - 5 * M).astimezone(zone)
    assert f'<time datetime="{asked.isoformat()}">{asked:%-d %b %H:%M:%S}</time>' in html
    assert f'Staged for <time datetime="{local.isoformat()}">{local:%H:%M:%S}</time>' in html
    assert f'Car opened at <time datetime="{local.isoformat()}">{local:%H:%M:%S}</time>' in html


def test_the_staged_unlock_says_so_and_carries_the_trips_end(soon_booking, clock):
    [unlock] = trip_start_unlocks(soon_booking)
    key = selectors.trip_key_for_booking(booking_id=soon_booking.pk)
    assert unlock.staged
    assert unlock.not_after == key.valid_until
    clock.move_to(soon_booking.starts_at, tick=False)
    assert sending.command_claim(command_id=unlock.pk) is not None
    unlock.refresh_from_db()
    assert not unlock.staged  # sent: it waits for no moment any more
