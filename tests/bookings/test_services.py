"""Booking services: every rule's message, the lifecycle and its event rows, holds with buffer
and blocks, overdue requests, cancellation terms, the trip clock, and the race for one car."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from unittest.mock import patch

import psycopg
import pytest
from allauth.account.models import EmailAddress
from django.db import OperationalError, connection
from django.utils import timezone

from bookings import services, tasks
from bookings.models import BlockReason, Booking, BookingEvent, BookingStatus, CarBlock
from bookings.services import BookingError
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import CarFactory, RenterFactory
from vehicles import occupancy
from vehicles.models import Occupancy

B = BookingStatus
H = datetime.timedelta(hours=1)
BUFFER = datetime.timedelta(minutes=30)  # the factory car's time between trips


def moves(booking: Booking) -> list[tuple[str, str, int | None]]:
    return [(e.old_status, e.new_status, e.actor_id) for e in booking.events.order_by("pk")]


def assert_refused(code: str, call, *, match: str | None = None) -> BookingError:
    with pytest.raises(BookingError, match=match) as caught:
        call()
    assert caught.value.code == code
    assert str(caught.value)  # something people can read
    return caught.value


# --- Rules, each with its own message --------------------------------------------------------


def test_a_period_that_ends_before_it_starts_is_refused(request_car, renter):
    start = hour_from_now(days=2)
    assert_refused(
        "invalid_period",
        lambda: services.booking_request(
            renter=renter, car=request_car, starts_at=start, ends_at=start
        ),
        match="end after it starts",
    )


def test_naive_times_are_a_programming_error(request_car, renter):
    start = hour_from_now(days=2).replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        services.booking_request(renter=renter, car=request_car, starts_at=start, ends_at=start + H)


def test_an_unlisted_car_is_refused(request_car, renter):
    request_car.is_listed = False
    request_car.save(update_fields=["is_listed"])
    assert_refused(
        "not_listed",
        lambda: request_booking(request_car, renter, starts_at=hour_from_now(days=2)),
        match="not listed",
    )


def test_the_owner_cannot_book_their_own_car(request_car, owner):
    EmailAddress.objects.filter(user=owner).update(verified=True)
    assert_refused(
        "own_car",
        lambda: request_booking(request_car, owner, starts_at=hour_from_now(days=2)),
        match="your own car",
    )


def test_an_unconnected_car_is_refused(car, renter):
    assert_refused(
        "not_connected",
        lambda: request_booking(car, renter, starts_at=hour_from_now(days=2)),
        match="not connected",
    )


def test_an_unverified_email_is_refused(request_car, renter):
    EmailAddress.objects.filter(user=renter).update(verified=False)
    assert_refused(
        "email_unverified",
        lambda: request_booking(request_car, renter, starts_at=hour_from_now(days=2)),
        match="verify your email",
    )


def test_no_licence_is_refused(request_car, renter):
    renter.licence_number = ""
    renter.save(update_fields=["licence_number"])
    assert_refused(
        "no_licence",
        lambda: request_booking(request_car, renter, starts_at=hour_from_now(days=2)),
        match="driving licence",
    )


def test_a_licence_must_last_through_the_trips_last_day(request_car, renter):
    start = hour_from_now(days=2)
    end = start + datetime.timedelta(days=3)
    last_day = end.astimezone(datetime.UTC).date()  # the factory car is in Europe/Amsterdam
    renter.licence_expires_on = last_day - datetime.timedelta(days=1)
    renter.save(update_fields=["licence_expires_on"])
    error = assert_refused(
        "no_licence",
        lambda: services.booking_request(
            renter=renter, car=request_car, starts_at=start, ends_at=end
        ),
    )
    assert "valid through" in str(error)
    renter.licence_expires_on = end.astimezone(datetime.UTC).date() + datetime.timedelta(days=1)
    renter.save(update_fields=["licence_expires_on"])
    services.booking_request(renter=renter, car=request_car, starts_at=start, ends_at=end)


def test_a_start_in_the_past_is_too_soon(request_car, renter):
    assert_refused(
        "too_soon",
        lambda: request_booking(request_car, renter, starts_at=timezone.now() - H),
        match="in the past",
    )


def test_the_cars_notice_is_respected(request_car, renter):
    request_car.min_notice_hours = 12
    request_car.save(update_fields=["min_notice_hours"])
    assert_refused(
        "too_soon",
        lambda: request_booking(request_car, renter, starts_at=hour_from_now(hours=10)),
        match="12 hours notice",
    )
    request_booking(request_car, renter, starts_at=hour_from_now(hours=12))


def test_a_trip_shorter_than_the_minimum_is_refused(request_car, renter):
    request_car.min_duration_hours = 3
    request_car.save(update_fields=["min_duration_hours"])
    start = hour_from_now(days=2)
    assert_refused(
        "too_short",
        lambda: request_booking(request_car, renter, starts_at=start, hours=2.5),
        match="at least 3 hours",
    )


def test_a_trip_longer_than_the_maximum_is_refused(request_car, renter):
    request_car.max_duration_days = 2
    request_car.save(update_fields=["max_duration_days"])
    start = hour_from_now(days=2)
    assert_refused(
        "too_long",
        lambda: request_booking(request_car, renter, starts_at=start, hours=49),
        match="at most 2 days",
    )
    request_booking(request_car, renter, starts_at=start, hours=48)


# --- Requests --------------------------------------------------------------------------------


def test_a_request_holds_the_car_with_the_buffer_and_stores_the_price(
    request_car, renter, clock, django_capture_on_commit_callbacks
):
    start = hour_from_now(days=3)
    with (
        patch.object(tasks.send_booking_emails, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        booking = request_booking(request_car, renter, starts_at=start, hours=26)
    assert booking.status == B.REQUESTED
    assert (booking.price, booking.hourly_rate, booking.daily_rate, booking.currency) == (
        Decimal("66.00"),  # a day at 50 plus two hours at 8
        Decimal("8.00"),
        Decimal("50.00"),
        "EUR",
    )
    assert booking.respond_by == booking.requested_at + 12 * H
    hold = Occupancy.objects.get(booking=booking)
    assert (hold.period.lower, hold.period.upper) == (
        start,
        start + 26 * H + datetime.timedelta(minutes=30),
    )
    assert moves(booking) == [("", B.REQUESTED, renter.pk)]
    delay.assert_called_once_with(booking_id=booking.pk, kind="requested")


def test_a_request_close_to_its_start_gets_half_the_time_left(request_car, renter, clock):
    booking = request_booking(request_car, renter, starts_at=hour_from_now(hours=5))
    half = (booking.starts_at - booking.requested_at) / 2
    assert booking.respond_by == booking.requested_at + half
    assert half < 12 * H


def test_an_instant_car_is_confirmed_by_the_system(
    instant_car, renter, django_capture_on_commit_callbacks
):
    with (
        patch.object(tasks.send_booking_emails, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        booking = request_booking(instant_car, renter, starts_at=hour_from_now(days=3))
    assert booking.status == B.CONFIRMED
    assert booking.instant
    assert booking.respond_by is None
    assert booking.confirmed_at
    assert moves(booking) == [("", B.REQUESTED, renter.pk), (B.REQUESTED, B.CONFIRMED, None)]
    assert booking.events.last().reason == "Instant book"
    delay.assert_called_once_with(booking_id=booking.pk, kind="confirmed")


def test_the_quote_is_the_stored_price_and_writes_nothing(request_car):
    start = hour_from_now(days=3)
    quote = services.booking_quote(car=request_car, starts_at=start, ends_at=start + 30 * H)
    assert (quote.price, quote.days, quote.hours) == (Decimal("98.00"), 1, 6)
    assert not Booking.objects.exists()
    with pytest.raises(BookingError) as caught:
        services.booking_quote(car=request_car, starts_at=start, ends_at=start)
    assert caught.value.code == "invalid_period"


# --- Availability: overlaps, the buffer and blocks -------------------------------------------


def test_an_overlapping_request_is_not_available(requested_booking, request_car):
    other = RenterFactory()
    assert_refused(
        "not_available",
        lambda: request_booking(
            request_car, other, starts_at=requested_booking.starts_at + H, hours=1
        ),
        match="already booked",
    )


def test_the_buffer_keeps_time_after_a_trip(requested_booking, request_car):
    other = RenterFactory()
    end = requested_booking.ends_at
    assert_refused(
        "not_available",
        lambda: request_booking(
            request_car, other, starts_at=end + datetime.timedelta(minutes=20), hours=2
        ),
    )
    after = request_booking(
        request_car, other, starts_at=end + datetime.timedelta(minutes=30), hours=2
    )
    assert after.status == B.REQUESTED


def test_the_buffer_of_a_new_trip_must_fit_before_the_next(requested_booking, request_car):
    other = RenterFactory()
    start = requested_booking.starts_at
    assert_refused(
        "not_available",
        lambda: services.booking_request(
            renter=other,
            car=request_car,
            starts_at=start - 3 * H,
            ends_at=start - datetime.timedelta(minutes=10),
        ),
    )
    services.booking_request(
        renter=other,
        car=request_car,
        starts_at=start - 3 * H,
        ends_at=start - datetime.timedelta(minutes=30),
    )


def test_a_constraint_refusal_is_not_available_even_past_the_check(requested_booking, request_car):
    # The friendly check misses (as under a race): the exclusion constraint still refuses.
    with patch.object(services, "_assert_period_free"):
        assert_refused(
            "not_available",
            lambda: request_booking(
                request_car, RenterFactory(), starts_at=requested_booking.starts_at, hours=1
            ),
        )
    assert Booking.objects.count() == 1


def test_the_same_time_on_another_car_is_fine(requested_booking, sim, owner):
    from tests.vehicles.fixtures_cloud import connect_car

    other_car = CarFactory(owner=owner)
    connect_car(sim, other_car, is_locked=False)
    booking = request_booking(
        other_car, requested_booking.renter, starts_at=requested_booking.starts_at
    )
    assert booking.status == B.CONFIRMED


def test_a_block_takes_part_in_the_guarantee(request_car, owner, renter):
    start = hour_from_now(days=2)
    block = services.block_create(
        car=request_car,
        user=owner,
        starts_at=start,
        ends_at=start + 24 * H,
        reason=BlockReason.MAINTENANCE,
        note="Tyres",
    )
    assert Occupancy.objects.get(block=block).period.upper == start + 24 * H  # no buffer
    assert_refused(
        "not_available", lambda: request_booking(request_car, renter, starts_at=start + 2 * H)
    )
    # A trip may start right when the block ends, and the block's end is exact.
    request_booking(request_car, renter, starts_at=start + 24 * H)
    services.block_delete(block=block, user=owner)
    assert not CarBlock.objects.exists()
    request_booking(request_car, renter, starts_at=start + 2 * H, hours=4)


def test_a_block_cannot_cover_a_booking_or_its_buffer(requested_booking, request_car, owner):
    end = requested_booking.ends_at
    assert_refused(
        "not_available",
        lambda: services.block_create(
            car=request_car,
            user=owner,
            starts_at=end + datetime.timedelta(minutes=10),
            ends_at=end + 5 * H,
            reason=BlockReason.PERSONAL,
        ),
    )


def test_only_the_owner_blocks_their_car(request_car, renter):
    start = hour_from_now(days=2)
    assert_refused(
        "not_allowed",
        lambda: services.block_create(
            car=request_car, user=renter, starts_at=start, ends_at=start + H
        ),
    )


def test_a_block_in_the_past_is_refused(request_car, owner):
    start = timezone.now() - 5 * H
    assert_refused(
        "invalid_period",
        lambda: services.block_create(
            car=request_car, user=owner, starts_at=start, ends_at=start + H
        ),
        match="already over",
    )


def test_only_the_owner_removes_a_block(request_car, owner, renter):
    start = hour_from_now(days=2)
    block = services.block_create(car=request_car, user=owner, starts_at=start, ends_at=start + H)
    assert_refused("not_allowed", lambda: services.block_delete(block=block, user=renter))
    assert CarBlock.objects.filter(pk=block.pk).exists()


# --- Overdue requests ------------------------------------------------------------------------


def test_an_overdue_request_stops_holding_before_the_sweep(requested_booking, request_car, clock):
    clock.move_to(requested_booking.respond_by + datetime.timedelta(seconds=1), tick=False)
    other = RenterFactory()
    booking = request_booking(request_car, other, starts_at=requested_booking.starts_at)
    assert booking.status == B.REQUESTED
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.EXPIRED
    assert moves(requested_booking)[-1] == (B.REQUESTED, B.EXPIRED, None)
    assert not Occupancy.objects.filter(booking=requested_booking).exists()


def test_an_overdue_request_can_no_longer_be_answered(requested_booking, owner, renter, clock):
    clock.move_to(requested_booking.respond_by, tick=False)
    for act in (
        lambda: services.booking_confirm(booking=requested_booking, user=owner),
        lambda: services.booking_decline(booking=requested_booking, user=owner),
        lambda: services.booking_cancel(booking=requested_booking, user=renter),
    ):
        assert_refused("not_allowed", act, match="expired")
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.REQUESTED  # the sweep records the expiry


def test_expiry_leaves_answered_and_timely_requests_alone(
    requested_booking, confirmed_booking, clock
):
    other = request_booking(
        confirmed_booking.car, RenterFactory(), starts_at=confirmed_booking.ends_at + 2 * H
    )
    assert services.bookings_expire_unanswered(now=timezone.now()) == 0
    clock.move_to(other.respond_by, tick=False)
    assert services.bookings_expire_unanswered(now=timezone.now()) == 1
    assert services.bookings_expire_unanswered(now=timezone.now()) == 0
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.CONFIRMED


# --- Answers ---------------------------------------------------------------------------------


def test_the_owner_confirms(requested_booking, owner, django_capture_on_commit_callbacks):
    with (
        patch.object(tasks.send_booking_emails, "delay") as delay,
        patch.object(tasks.start_trip, "apply_async") as eta,
        django_capture_on_commit_callbacks(execute=True),
    ):
        booking = services.booking_confirm(booking=requested_booking, user=owner)
    assert booking.status == B.CONFIRMED
    assert booking.confirmed_at
    assert moves(booking)[-1] == (B.REQUESTED, B.CONFIRMED, owner.pk)
    delay.assert_called_once_with(booking_id=booking.pk, kind="confirmed")
    eta.assert_not_called()  # days away: the sweep starts it
    assert Occupancy.objects.filter(booking=booking).exists()


def test_a_trip_starting_within_the_hour_gets_an_eta_task(
    request_car, renter, owner, clock, django_capture_on_commit_callbacks
):
    booking = request_booking(
        request_car, renter, starts_at=timezone.now() + datetime.timedelta(minutes=40)
    )
    with (
        patch.object(tasks.start_trip, "apply_async") as eta,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.booking_confirm(booking=booking, user=owner)
    eta.assert_called_once_with(kwargs={"booking_id": booking.pk}, eta=booking.starts_at)


def test_confirming_twice_is_not_allowed(confirmed_booking, owner):
    assert_refused(
        "not_allowed",
        lambda: services.booking_confirm(booking=confirmed_booking, user=owner),
        match="Not possible now: Confirmed",
    )


def test_the_renter_cannot_answer_their_own_request(requested_booking, renter):
    assert_refused(
        "not_allowed", lambda: services.booking_confirm(booking=requested_booking, user=renter)
    )
    assert_refused(
        "not_allowed", lambda: services.booking_decline(booking=requested_booking, user=renter)
    )


def test_declining_frees_the_time_and_keeps_the_reason(requested_booking, request_car, owner):
    booking = services.booking_decline(booking=requested_booking, user=owner, reason="Away")
    assert booking.status == B.DECLINED
    assert booking.events.last().reason == "Away"
    assert not Occupancy.objects.filter(booking=booking).exists()
    request_booking(request_car, RenterFactory(), starts_at=booking.starts_at)


# --- Cancellation ----------------------------------------------------------------------------


def test_the_renter_cancels_a_day_ahead_for_free(confirmed_booking, renter, request_car):
    booking = services.booking_cancel(booking=confirmed_booking, user=renter, reason="Plans")
    assert (booking.status, booking.cancelled_by) == (B.CANCELLED, "renter")
    assert (booking.cancellation_fee, booking.refund) == (Decimal("0.00"), booking.price)
    assert moves(booking)[-1] == (B.CONFIRMED, B.CANCELLED, renter.pk)
    assert not Occupancy.objects.filter(booking=booking).exists()
    request_booking(request_car, RenterFactory(), starts_at=booking.starts_at)


def test_a_late_renter_cancellation_costs_half(confirmed_booking, renter, clock):
    clock.move_to(confirmed_booking.starts_at - 2 * H, tick=False)
    booking = services.booking_cancel(booking=confirmed_booking, user=renter)
    assert booking.cancellation_fee == booking.refund == booking.price / 2


def test_withdrawing_a_request_late_is_free(request_car, renter, clock):
    booking = request_booking(request_car, renter, starts_at=hour_from_now(hours=6))
    booking = services.booking_cancel(booking=booking, user=renter)
    assert (booking.cancellation_fee, booking.refund) == (Decimal("0.00"), booking.price)


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_an_owner_or_admin_cancellation_refunds_in_full(confirmed_booking, owner, clock, who):
    clock.move_to(confirmed_booking.starts_at - H, tick=False)
    user = owner if who == "owner" else RenterFactory(is_staff=True)
    booking = services.booking_cancel(booking=confirmed_booking, user=user, reason="Broken")
    assert (booking.cancelled_by, booking.cancellation_fee, booking.refund) == (
        who,
        Decimal("0.00"),
        booking.price,
    )


def test_a_stranger_cannot_cancel(confirmed_booking, stranger):
    assert_refused(
        "not_allowed", lambda: services.booking_cancel(booking=confirmed_booking, user=stranger)
    )


def test_an_active_trip_cannot_be_cancelled(active_booking, renter):
    assert_refused(
        "not_allowed", lambda: services.booking_cancel(booking=active_booking, user=renter)
    )


def test_cancelling_enqueues_the_emails(
    confirmed_booking, renter, django_capture_on_commit_callbacks
):
    with (
        patch.object(tasks.send_booking_emails, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.booking_cancel(booking=confirmed_booking, user=renter)
    delay.assert_called_once_with(booking_id=confirmed_booking.pk, kind="cancelled")


# --- The trip clock and the end of a trip ----------------------------------------------------


def test_the_trip_clock_starts_and_completes_only_when_due(confirmed_booking, clock):
    assert services.booking_start(booking_id=confirmed_booking.pk) is None  # not yet
    clock.move_to(confirmed_booking.starts_at, tick=False)
    with patch.object(services, "_on_trip_started") as started:
        booking = services.booking_start(booking_id=confirmed_booking.pk)
    started.assert_called_once()
    assert booking.status == B.ACTIVE
    assert booking.started_at == confirmed_booking.starts_at
    assert services.booking_start(booking_id=booking.pk) is None  # a second run: nothing
    assert services.booking_complete(booking_id=booking.pk) is None  # not over yet
    clock.move_to(booking.ends_at, tick=False)
    with patch.object(services, "_on_trip_ended") as ended:
        booking = services.booking_complete(booking_id=booking.pk)
    ended.assert_called_once()
    assert booking.status == B.COMPLETED
    assert booking.ended_at == booking.ends_at
    assert services.booking_complete(booking_id=booking.pk) is None
    assert [m[:2] for m in moves(booking)][-2:] == [
        (B.CONFIRMED, B.ACTIVE),
        (B.ACTIVE, B.COMPLETED),
    ]
    assert {m[2] for m in moves(booking)[-2:]} == {None}
    hold = Occupancy.objects.get(booking=booking)  # the owner's buffer after the trip stays
    assert (hold.period.lower, hold.period.upper) == (booking.ends_at, booking.ends_at + BUFFER)


def test_only_a_trip_ending_within_the_hour_gets_an_end_eta(
    request_car, renter, owner, clock, django_capture_on_commit_callbacks
):
    start = timezone.now() + datetime.timedelta(minutes=30)
    short = request_booking(request_car, renter, starts_at=start, hours=1)
    long = request_booking(request_car, RenterFactory(), starts_at=start + 3 * H, hours=4)
    services.booking_confirm(booking=short, user=owner)
    services.booking_confirm(booking=long, user=owner)
    with (
        patch.object(tasks.complete_trip, "apply_async") as eta,
        django_capture_on_commit_callbacks(execute=True),
    ):
        clock.move_to(start, tick=False)
        services.booking_start(booking_id=short.pk)
        clock.move_to(long.starts_at, tick=False)
        services.booking_start(booking_id=long.pk)  # four hours left: the sweep ends it
    eta.assert_called_once_with(kwargs={"booking_id": short.pk}, eta=short.ends_at)


def test_the_renter_ends_a_trip_early(active_booking, renter, request_car, clock):
    clock.shift(H)
    with patch.object(services, "_on_trip_ended") as ended:
        booking = services.booking_end(booking=active_booking, user=renter)
    ended.assert_called_once()
    assert booking.status == B.COMPLETED
    assert moves(booking)[-1] == (B.ACTIVE, B.COMPLETED, renter.pk)
    assert booking.cancellation_fee is None
    assert booking.refund is None
    hold = Occupancy.objects.get(booking=booking)  # shrunk to the buffer after the actual end
    assert (hold.period.lower, hold.period.upper) == (booking.ended_at, booking.ended_at + BUFFER)
    assert services.booking_complete(booking_id=booking.pk) is None


def _end_trip(booking: Booking, how: str, renter, clock) -> datetime.datetime:
    """End `booking` early (an hour into it, by the renter) or on time (the trip clock); returns
    the actual end."""
    if how == "early":
        clock.move_to(booking.starts_at + H, tick=False)
        services.booking_end(booking=booking, user=renter)
    else:
        clock.move_to(booking.ends_at, tick=False)
        services.booking_complete(booking_id=booking.pk)
    return timezone.now()


@pytest.mark.parametrize("how", ["early", "on_time"])
def test_the_buffer_stays_after_the_actual_end(active_booking, renter, request_car, clock, how):
    ended = _end_trip(active_booking, how, renter, clock)
    assert active_booking.ends_at - active_booking.starts_at == 4 * H
    next_renter = RenterFactory()
    minutes = datetime.timedelta(minutes=1)
    assert_refused(
        "not_available",
        lambda: request_booking(request_car, next_renter, starts_at=ended + 2 * minutes),
    )
    booking = request_booking(request_car, next_renter, starts_at=ended + BUFFER)
    assert booking.status == B.REQUESTED


def test_a_late_trip_clock_never_stretches_the_buffer_into_the_next_trip(
    confirmed_booking, request_car, clock
):
    # The next trip starts right where this one's buffer ends; the clock completes this one
    # 20 s late, which must not push the buffer onto the next trip's hold.
    next_trip = request_booking(
        request_car, RenterFactory(), starts_at=confirmed_booking.ends_at + BUFFER
    )
    clock.move_to(confirmed_booking.starts_at, tick=False)
    services.booking_start(booking_id=confirmed_booking.pk)
    clock.move_to(confirmed_booking.ends_at + datetime.timedelta(seconds=20), tick=False)
    booking = services.booking_complete(booking_id=confirmed_booking.pk)
    assert booking is not None
    assert booking.status == B.COMPLETED
    hold = Occupancy.objects.get(booking=booking)
    assert hold.period.upper == booking.ends_at + BUFFER == next_trip.starts_at


def test_a_trip_completed_after_its_buffer_leaves_no_hold(confirmed_booking, clock):
    clock.move_to(confirmed_booking.starts_at, tick=False)
    services.booking_start(booking_id=confirmed_booking.pk)
    clock.move_to(confirmed_booking.ends_at + 2 * BUFFER, tick=False)  # the clock was down
    booking = services.booking_complete(booking_id=confirmed_booking.pk)
    assert booking is not None
    assert not Occupancy.objects.filter(booking=booking).exists()


def test_only_the_renter_ends_a_trip(active_booking, owner):
    assert_refused("not_allowed", lambda: services.booking_end(booking=active_booking, user=owner))


def test_a_trip_that_has_not_started_cannot_be_ended(confirmed_booking, renter):
    assert_refused(
        "not_allowed", lambda: services.booking_end(booking=confirmed_booking, user=renter)
    )


def test_every_status_change_has_an_event(confirmed_booking):
    assert BookingEvent.objects.filter(booking=confirmed_booking).count() == 2


# --- The race --------------------------------------------------------------------------------

RACERS = 20


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_exactly_one_holds(transactional_db, request_car):
    renters = [RenterFactory() for _ in range(RACERS)]
    start = hour_from_now(days=4)
    barrier = threading.Barrier(RACERS)
    outcomes: list[object] = [None] * RACERS

    def race(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = services.booking_request(
                renter=renters[i],
                car=request_car,
                # overlapping, each a little different
                starts_at=start + datetime.timedelta(minutes=5 * i),
                ends_at=start + 4 * H + datetime.timedelta(minutes=5 * i),
            )
        except Exception as error:  # recorded and asserted below
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    won = [o for o in outcomes if isinstance(o, Booking)]
    lost = [o for o in outcomes if isinstance(o, BookingError)]
    assert len(won) == 1, outcomes
    assert len(lost) == RACERS - 1, outcomes
    assert {e.code for e in lost} == {"not_available"}
    assert Booking.objects.count() == 1
    assert Occupancy.objects.filter(car=request_car).count() == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_for_separate_times_all_hold(transactional_db, request_car):
    racers = 8
    renters = [RenterFactory() for _ in range(racers)]
    start = hour_from_now(days=4)
    barrier = threading.Barrier(racers)
    outcomes: list[object] = [None] * racers

    def race(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = services.booking_request(
                renter=renters[i],
                car=request_car,
                starts_at=start + datetime.timedelta(hours=3 * i),
                ends_at=start + datetime.timedelta(hours=3 * i + 2),  # + 30 min buffer: apart
            )
        except Exception as error:
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(o, Booking) for o in outcomes), outcomes


def _deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")  # as Django wraps it
    return error


def test_a_deadlocked_insert_is_tried_again(request_car, renter):
    # Two inserters of overlapping holds can wait for each other; PostgreSQL aborts one.
    real = services._booking_insert
    calls = iter([_deadlock()])

    def flaky(**kwargs):
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return real(**kwargs)

    with patch.object(services, "_booking_insert", side_effect=flaky) as insert:
        booking = request_booking(request_car, renter, starts_at=hour_from_now(days=2))
    assert booking.status == B.REQUESTED
    assert insert.call_count == 2


def test_a_request_that_keeps_deadlocking_is_not_available(request_car, renter):
    with patch.object(services, "_booking_insert", side_effect=_deadlock()) as insert:
        assert_refused(
            "not_available",
            lambda: request_booking(request_car, renter, starts_at=hour_from_now(days=2)),
        )
    assert insert.call_count == services.DEADLOCK_RETRIES


def test_other_database_errors_are_not_disguised(request_car, renter):
    with (
        patch.object(services, "_booking_insert", side_effect=OperationalError("gone")),
        pytest.raises(OperationalError),
    ):
        request_booking(request_car, renter, starts_at=hour_from_now(days=2))


@pytest.mark.django_db(transaction=True)
def test_blocks_race_requests_on_equal_terms(transactional_db, request_car, owner):
    racers = 10
    renters = [RenterFactory() for _ in range(racers)]
    start = hour_from_now(days=4)
    barrier = threading.Barrier(racers)
    outcomes: list[object] = [None] * racers

    def race(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            if i % 2:
                outcomes[i] = services.block_create(
                    car=request_car, user=owner, starts_at=start + H, ends_at=start + 3 * H
                )
            else:
                outcomes[i] = services.booking_request(
                    renter=renters[i], car=request_car, starts_at=start, ends_at=start + 2 * H
                )
        except Exception as error:
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [o for o in outcomes if isinstance(o, Booking | CarBlock)]
    assert len(winners) == 1, outcomes
    assert {o.code for o in outcomes if isinstance(o, BookingError)} == {"not_available"}
    assert Occupancy.objects.filter(car=request_car).count() == 1


# --- A state machine against an in-memory model ----------------------------------------------


class _Model:
    """What should hold the car: plain Python, no database."""

    def __init__(self) -> None:
        self.bookings: dict[int, dict] = {}  # pk → start, end, status, respond_by
        self.blocks: dict[int, tuple[datetime.datetime, datetime.datetime]] = {}

    def holding(self, now: datetime.datetime, buffer: datetime.timedelta) -> list[tuple]:
        spans = [(start, end) for start, end in self.blocks.values()]
        for b in self.bookings.values():
            overdue = b["status"] == B.REQUESTED and b["respond_by"] <= now
            if b["status"] in (B.REQUESTED, B.CONFIRMED, B.ACTIVE) and not overdue:
                spans.append((b["start"], b["end"] + buffer))
            if b["status"] == B.COMPLETED:
                # The buffer from the actual end, unless it was over before the trip completed.
                actual_end = min(b["ended"], b["end"])
                if actual_end + buffer > b["ended"]:
                    spans.append((actual_end, actual_end + buffer))
        return sorted(spans)

    def free(self, start, end, now, buffer) -> bool:
        return all(not (s < end and start < e) for s, e in self.holding(now, buffer))


def attempt(call):
    """(result, None) or (None, the BookingError), so assertions stay outside `except`."""
    try:
        return call(), None
    except BookingError as error:
        return None, error


def test_random_lifecycles_match_a_simple_model(request_car, renter, owner, clock):
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        invariant,
        rule,
        run_state_machine_as_test,
    )

    car = request_car
    buffer = datetime.timedelta(minutes=car.buffer_minutes)
    base = hour_from_now(days=1)

    class Lifecycles(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            Booking.objects.filter(car=car).delete()  # events cascade
            CarBlock.objects.filter(car=car).delete()
            Occupancy.objects.filter(car=car).delete()  # the car's own rows, freed
            clock.move_to(base - 24 * H, tick=False)
            self.model = _Model()

        def _now(self) -> datetime.datetime:
            return timezone.now()

        def _pick(self, index: int) -> Booking | None:
            pks = sorted(self.model.bookings)
            return Booking.objects.get(pk=pks[index % len(pks)]) if pks else None

        @rule(offset=st.integers(0, 96), hours=st.integers(1, 8))
        def request(self, offset, hours):
            start = base + offset * H
            end = start + hours * H
            now = self._now()
            if start >= now:  # past the rules, booking_request expires overdue requests
                self._expire_in_model(now)
            expected = start >= now and self.model.free(start, end + buffer, now, buffer)
            booking, error = attempt(
                lambda: services.booking_request(
                    renter=renter, car=car, starts_at=start, ends_at=end
                )
            )
            if error is not None:
                assert not expected, error
                assert error.code in ("not_available", "too_soon")
                return
            assert expected
            self.model.bookings[booking.pk] = {
                "start": start,
                "end": end,
                "status": B.REQUESTED,
                "respond_by": booking.respond_by,
            }

        def _expire_in_model(self, now) -> None:
            for b in self.model.bookings.values():
                if b["status"] == B.REQUESTED and b["respond_by"] <= now:
                    b["status"] = B.EXPIRED

        def _answer(self, index, service, to, allowed_from, **kwargs):
            booking = self._pick(index)
            if booking is None:
                return
            b = self.model.bookings[booking.pk]
            now = self._now()
            overdue = b["status"] == B.REQUESTED and b["respond_by"] <= now
            expected = b["status"] in allowed_from and not overdue
            _, error = attempt(lambda: service(booking=booking, **kwargs))
            if error is not None:
                assert not expected, error
                assert error.code == "not_allowed"
                return
            assert expected
            b["status"] = to

        @rule(index=st.integers(0, 50))
        def confirm(self, index):
            self._answer(index, services.booking_confirm, B.CONFIRMED, {B.REQUESTED}, user=owner)

        @rule(index=st.integers(0, 50))
        def decline(self, index):
            self._answer(index, services.booking_decline, B.DECLINED, {B.REQUESTED}, user=owner)

        @rule(index=st.integers(0, 50), by_owner=st.booleans())
        def cancel(self, index, by_owner):
            self._answer(
                index,
                services.booking_cancel,
                B.CANCELLED,
                {B.REQUESTED, B.CONFIRMED},
                user=owner if by_owner else renter,
            )

        @rule(offset=st.integers(0, 96), hours=st.integers(1, 24))
        def block(self, offset, hours):
            start, end = base + offset * H, base + (offset + hours) * H
            now = self._now()
            if end > now:  # past the rules, block_create expires overdue requests
                self._expire_in_model(now)
            expected = end > now and self.model.free(start, end, now, buffer)
            block, error = attempt(
                lambda: services.block_create(car=car, user=owner, starts_at=start, ends_at=end)
            )
            if error is not None:
                assert not expected, error
                return
            assert expected
            self.model.blocks[block.pk] = (start, end)

        @rule(index=st.integers(0, 50))
        def unblock(self, index):
            if not self.model.blocks:
                return
            pk = sorted(self.model.blocks)[index % len(self.model.blocks)]
            services.block_delete(block=CarBlock.objects.get(pk=pk), user=owner)
            del self.model.blocks[pk]

        @rule(minutes=st.integers(1, 24 * 60))
        def time_passes(self, minutes):
            clock.shift(datetime.timedelta(minutes=minutes))

        @rule()
        def sweeps(self):
            now = self._now()
            due = sum(
                1
                for b in self.model.bookings.values()
                if b["status"] == B.REQUESTED and b["respond_by"] <= now
            )
            assert services.bookings_expire_unanswered(now=now) == due
            self._expire_in_model(now)
            for pk, b in self.model.bookings.items():
                if b["status"] == B.CONFIRMED and b["start"] <= now:
                    assert services.booking_start(booking_id=pk) is not None
                    b["status"] = B.ACTIVE
                if b["status"] == B.ACTIVE and b["end"] <= now:
                    assert services.booking_complete(booking_id=pk) is not None
                    b["status"], b["ended"] = B.COMPLETED, now

        @invariant()
        def statuses_match(self):
            stored = dict(Booking.objects.filter(car=car).values_list("pk", "status"))
            assert stored == {pk: b["status"] for pk, b in self.model.bookings.items()}

        @invariant()
        def busy_times_match(self):
            now = self._now()
            busy = occupancy.busy_intervals(car=car, start=base - 48 * H, end=base + 200 * H)
            assert [(s, e) for s, e, _ in busy] == self.model.holding(now, buffer)

    run_state_machine_as_test(
        Lifecycles,
        settings=hypothesis_settings(max_examples=20, stateful_step_count=25, deadline=None),
    )
