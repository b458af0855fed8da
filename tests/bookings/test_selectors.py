"""Booking reads: the access doors (strangers get 404), the lists, availability and the
owner's month calendar."""

from __future__ import annotations

import datetime
import uuid
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from bookings import selectors, services
from bookings.models import BookingStatus
from keys import grants
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import RenterFactory, UserFactory
from vehicles import occupancy

B = BookingStatus
H = datetime.timedelta(hours=1)


# --- Access doors ----------------------------------------------------------------------------


def test_participants_and_staff_see_the_booking(requested_booking, renter, owner):
    staff = UserFactory(is_staff=True)
    for user in (renter, owner, staff):
        found = selectors.booking_for_participant(user=user, public_id=requested_booking.public_id)
        assert found == requested_booking


def test_a_stranger_gets_404(requested_booking, stranger):
    with pytest.raises(Http404):
        selectors.booking_for_participant(user=stranger, public_id=requested_booking.public_id)
    with pytest.raises(Http404):
        selectors.booking_for_owner(user=stranger, public_id=requested_booking.public_id)


@pytest.mark.parametrize("public_id", ["not-a-uuid", str(uuid.uuid4()), ""])
def test_ids_that_name_no_booking_are_404(renter, public_id):
    with pytest.raises(Http404):
        selectors.booking_for_participant(user=renter, public_id=public_id)


def test_anonymous_gets_404(requested_booking):
    with pytest.raises(Http404):
        selectors.booking_for_participant(
            user=AnonymousUser(), public_id=requested_booking.public_id
        )


def test_the_owner_door_is_for_the_owner_only(requested_booking, renter, owner):
    assert selectors.booking_for_owner(user=owner, public_id=requested_booking.public_id)
    with pytest.raises(Http404):
        selectors.booking_for_owner(user=renter, public_id=requested_booking.public_id)


# --- Lists -----------------------------------------------------------------------------------


def test_my_trips_are_grouped(request_car, renter, owner, clock):
    soon = request_booking(request_car, renter, starts_at=hour_from_now(days=1))
    later = request_booking(request_car, renter, starts_at=hour_from_now(days=3))
    gone = request_booking(request_car, renter, starts_at=hour_from_now(days=5))
    services.booking_confirm(booking=soon, user=owner)
    services.booking_decline(booking=gone, user=owner)
    clock.move_to(soon.starts_at, tick=False)
    services.booking_start(booking_id=soon.pk)
    trips = selectors.bookings_of_renter(user=renter)
    assert list(trips["active"]) == [soon]
    assert list(trips["upcoming"]) == [later]
    assert list(trips["past"]) == [gone]
    assert all(not list(qs) for qs in selectors.bookings_of_renter(user=owner).values())


def test_the_owner_sees_their_cars_bookings(request_car, renter, owner, stranger):
    first = request_booking(request_car, renter, starts_at=hour_from_now(days=1))
    second = request_booking(request_car, renter, starts_at=hour_from_now(days=3))
    services.booking_confirm(booking=second, user=owner)
    assert list(selectors.bookings_of_owner(user=owner)) == [first, second]
    assert list(selectors.bookings_of_owner(user=owner, status=B.REQUESTED)) == [first]
    assert list(selectors.bookings_of_owner(user=stranger)) == []
    assert set(selectors.bookings_of_user(user=renter)) == {first, second}
    assert set(selectors.bookings_of_user(user=owner)) == {first, second}


# --- Availability ----------------------------------------------------------------------------


def test_busy_intervals_show_holds_with_their_kind(requested_booking, request_car, owner):
    start = requested_booking.starts_at
    block = services.block_create(
        car=request_car, user=owner, starts_at=start + 10 * H, ends_at=start + 12 * H
    )
    other = request_booking(request_car, RenterFactory(), starts_at=start + 24 * H)
    services.booking_confirm(booking=other, user=owner)
    busy = occupancy.busy_intervals(car=request_car, start=start - 24 * H, end=start + 48 * H)
    assert busy == [
        (start, requested_booking.ends_at + datetime.timedelta(minutes=30), "request"),
        (block.period.lower, block.period.upper, "block"),
        (other.starts_at, other.ends_at + datetime.timedelta(minutes=30), "booking"),
    ]
    # Only what overlaps the window.
    assert occupancy.busy_intervals(car=request_car, start=start + 9 * H, end=start + 11 * H) == [
        (block.period.lower, block.period.upper, "block")
    ]


def test_busy_intervals_ignore_overdue_requests_before_the_sweep(requested_booking, clock):
    car, start = requested_booking.car, requested_booking.starts_at
    assert occupancy.busy_intervals(car=car, start=start, end=start + H)
    clock.move_to(requested_booking.respond_by, tick=False)
    assert occupancy.busy_intervals(car=car, start=start, end=start + H) == []


def test_declined_bookings_are_not_busy(requested_booking, owner):
    services.booking_decline(booking=requested_booking, user=owner)
    start = requested_booking.starts_at
    assert occupancy.busy_intervals(car=requested_booking.car, start=start, end=start + H) == []


def test_reminders_are_due_in_the_last_hour(confirmed_booking, clock):
    start = confirmed_booking.starts_at
    clock.move_to(start - 2 * H, tick=False)
    assert selectors.bookings_due_reminder(now=start - 2 * H) == []
    assert selectors.bookings_due_reminder(now=start - H) == [confirmed_booking.pk]
    assert selectors.bookings_due_reminder(now=start) == []


# --- The month calendar ----------------------------------------------------------------------


def test_the_month_calendar_places_bookings_and_blocks_on_local_days(
    request_car, renter, owner, django_assert_num_queries
):
    zone = ZoneInfo(request_car.time_zone)
    soon = hour_from_now(days=40).astimezone(zone)  # a month that is wholly ahead
    year, month = soon.year, soon.month
    # 23:30 local on one day until 01:30 on the next: on both days of the car's calendar.
    start = datetime.datetime(year, month, 10, 23, 30, tzinfo=zone)
    booking = request_booking(request_car, renter, starts_at=start, hours=2)
    block_start = start + 48 * H
    block = services.block_create(
        car=request_car, user=owner, starts_at=block_start, ends_at=block_start + H
    )
    with django_assert_num_queries(2):
        cal = selectors.calendar_month(car=request_car, year=year, month=month)
    days = {day.date: day for week in cal.weeks for day in week}
    assert all(len(week) == 7 for week in cal.weeks)
    assert cal.weeks[0][0].date.weekday() == 0  # Monday first
    first, second = start.date(), start.date() + datetime.timedelta(days=1)
    assert [e.obj for e in days[first].entries] == [booking]
    assert [e.obj for e in days[second].entries] == [booking]
    assert days[first].entries[0].starts_at.tzinfo == zone
    assert [e.kind for e in days[block_start.date()].entries] == ["block"]
    assert days[block_start.date()].entries[0].obj == block
    assert cal.bookings == [booking]
    assert cal.blocks == [block]
    assert cal.previous == ((year - 1, 12) if month == 1 else (year, month - 1))
    assert cal.next == ((year + 1, 1) if month == 12 else (year, month + 1))


def test_the_calendar_leaves_out_declined_requests(requested_booking, owner):
    services.booking_decline(booking=requested_booking, user=owner)
    local = requested_booking.starts_at.astimezone(ZoneInfo(requested_booking.car.time_zone))
    cal = selectors.calendar_month(car=requested_booking.car, year=local.year, month=local.month)
    assert cal.bookings == []


def test_the_feed_lists_bookings_and_blocks(confirmed_booking, owner):
    start = confirmed_booking.ends_at + 5 * H
    block = services.block_create(
        car=confirmed_booking.car, user=owner, starts_at=start, ends_at=start + H
    )
    entries = selectors.calendar_feed_entries(car=confirmed_booking.car)
    assert [e["uid"] for e in entries] == [
        f"booking-{confirmed_booking.public_id}",
        f"block-{block.public_id}",
    ]


def _service_window(car, owner, *, starts_at, hours=2, note="New tyres"):
    """A service key for a technician: its window takes the car like a block."""
    technician = UserFactory(email="tech@example.test", name="Tina Technician")
    return grants.service_key_issue(
        car=car,
        user=owner,
        email=technician.email,
        starts_at=starts_at,
        ends_at=starts_at + hours * H,
        note=note,
    )


def test_the_month_calendar_shows_service_windows(request_car, owner, django_assert_num_queries):
    zone = ZoneInfo(request_car.time_zone)
    soon = hour_from_now(days=40).astimezone(zone)
    start = datetime.datetime(soon.year, soon.month, 12, 9, 0, tzinfo=zone)
    block = services.block_create(
        car=request_car, user=owner, starts_at=start - 24 * H, ends_at=start - 23 * H
    )
    window = _service_window(request_car, owner, starts_at=start)
    with django_assert_num_queries(2):  # still: bookings, then blocks and windows together
        cal = selectors.calendar_month(car=request_car, year=soon.year, month=soon.month)
    days = {day.date: day for week in cal.weeks for day in week}
    (entry,) = days[start.date()].entries
    assert (entry.kind, entry.obj, entry.starts_at, entry.ends_at) == (
        "service",
        window,
        start,
        start + 2 * H,
    )
    assert entry.starts_at.tzinfo == zone
    assert cal.service_windows == [window]
    assert cal.blocks == [block]  # a window is not a block


def test_a_revoked_service_window_leaves_the_calendar(request_car, owner):
    zone = ZoneInfo(request_car.time_zone)
    start = hour_from_now(days=40).astimezone(zone)
    window = _service_window(request_car, owner, starts_at=start)
    grants.key_revoke(key=window, user=owner)
    cal = selectors.calendar_month(car=request_car, year=start.year, month=start.month)
    assert cal.service_windows == []
    assert selectors.calendar_feed_entries(car=request_car) == []


def test_the_feed_lists_service_windows(confirmed_booking, owner):
    start = confirmed_booking.ends_at + 5 * H
    window = _service_window(confirmed_booking.car, owner, starts_at=start)
    entries = selectors.calendar_feed_entries(car=confirmed_booking.car)
    assert [(e["uid"], e["kind"], e["starts_at"], e["ends_at"]) for e in entries] == [
        (
            f"booking-{confirmed_booking.public_id}",
            "booking",
            confirmed_booking.starts_at,
            confirmed_booking.ends_at,
        ),
        (f"service-{window.public_id}", "service", start, start + 2 * H),
    ]
