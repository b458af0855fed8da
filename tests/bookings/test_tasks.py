"""Booking tasks called directly, twice (as a redelivering broker would): the emails go once
each, the expiry sweep, the trip clock and the reminder; and a real worker end to end."""

from __future__ import annotations

import datetime
import time
from contextlib import contextmanager
from smtplib import SMTPException
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from bookings import notifications, services, tasks
from bookings.models import Booking, BookingStatus
from tests.bookings.fixtures_bookings import hour_from_now, request_booking

B = BookingStatus
H = datetime.timedelta(hours=1)


@contextmanager
def emails_run_inline(django_capture_on_commit_callbacks):
    """On commit, run the email tasks here (twice, like a broker redelivering), not in Redis."""

    def twice(**kwargs):
        tasks.send_booking_emails(**kwargs)
        tasks.send_booking_emails(**kwargs)

    with (
        patch.object(tasks.send_booking_emails, "delay", side_effect=twice),
        patch.object(tasks.start_trip, "apply_async"),
        patch.object(tasks.complete_trip, "apply_async"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        yield


def sent(mailoutbox) -> list[tuple[str, str]]:
    return [(m.to[0], m.subject) for m in mailoutbox]


# --- Emails ----------------------------------------------------------------------------------


def test_a_request_emails_the_owner_once(
    request_car, renter, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with emails_run_inline(django_capture_on_commit_callbacks):
        booking = request_booking(request_car, renter, starts_at=hour_from_now(days=3))
    assert sent(mailoutbox) == [(owner.email, "[carshare] New request for your Volkswagen Golf")]
    body = mailoutbox[0].body
    assert "Rick would like to rent your car" in body
    assert str(booking.price) in body
    local_start = booking.starts_at.astimezone(ZoneInfo("Europe/Amsterdam"))  # the car's zone
    assert f"From: {local_start:%a} {local_start.day} {local_start:%b %Y, %H:%M}" in body
    assert "(Europe/Amsterdam)" in body


def test_an_answer_emails_the_renter_once(
    requested_booking, owner, renter, mailoutbox, django_capture_on_commit_callbacks
):
    with emails_run_inline(django_capture_on_commit_callbacks):
        services.booking_confirm(booking=requested_booking, user=owner)
    assert sent(mailoutbox) == [
        (renter.email, "[carshare] Your trip with the Volkswagen Golf is confirmed")
    ]


def test_an_instant_booking_tells_both(
    instant_car, renter, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with emails_run_inline(django_capture_on_commit_callbacks):
        request_booking(instant_car, renter, starts_at=hour_from_now(days=3))
    assert sorted(to for to, _ in sent(mailoutbox)) == sorted([renter.email, owner.email])


def test_a_decline_tells_the_renter(
    requested_booking, owner, renter, mailoutbox, django_capture_on_commit_callbacks
):
    with emails_run_inline(django_capture_on_commit_callbacks):
        services.booking_decline(booking=requested_booking, user=owner, reason="Away")
    assert sent(mailoutbox) == [
        (renter.email, "[carshare] Your request for the Volkswagen Golf was declined")
    ]


def test_a_cancellation_tells_both_with_the_refund(
    confirmed_booking, renter, owner, mailoutbox, clock, django_capture_on_commit_callbacks
):
    clock.move_to(confirmed_booking.starts_at - 2 * H, tick=False)
    with emails_run_inline(django_capture_on_commit_callbacks):
        booking = services.booking_cancel(booking=confirmed_booking, user=renter)
    assert sorted(to for to, _ in sent(mailoutbox)) == sorted([renter.email, owner.email])
    to_renter = next(m for m in mailoutbox if m.to == [renter.email])
    assert f"Refund: {booking.refund} EUR" in to_renter.body


def test_an_email_that_failed_to_send_goes_on_the_retry(requested_booking, owner, mailoutbox):
    real = notifications.send_booking_email
    with (
        patch.object(
            notifications, "send_booking_email", side_effect=[SMTPException("busy"), real]
        ) as send,
        pytest.raises(SMTPException),
    ):
        tasks.send_booking_emails(booking_id=requested_booking.pk, kind="requested")
    send.side_effect = None
    with patch.object(notifications, "send_booking_email", wraps=real):
        tasks.send_booking_emails(booking_id=requested_booking.pk, kind="requested")
        tasks.send_booking_emails(booking_id=requested_booking.pk, kind="requested")
    assert [m.to for m in mailoutbox] == [[owner.email]]


def test_an_email_for_a_vanished_booking_is_dropped(mailoutbox, db):
    tasks.send_booking_emails(booking_id=10**9, kind="requested")
    assert mailoutbox == []


# --- The expiry sweep ------------------------------------------------------------------------


def test_the_sweep_expires_and_tells_the_renter_once(
    requested_booking, renter, mailoutbox, clock, django_capture_on_commit_callbacks
):
    assert tasks.expire_unanswered_requests() == 0
    clock.move_to(requested_booking.respond_by, tick=False)
    with emails_run_inline(django_capture_on_commit_callbacks):
        assert tasks.expire_unanswered_requests() == 1
    with emails_run_inline(django_capture_on_commit_callbacks):
        assert tasks.expire_unanswered_requests() == 0
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.EXPIRED
    assert requested_booking.events.filter(new_status=B.EXPIRED).count() == 1
    assert sent(mailoutbox) == [
        (renter.email, "[carshare] Your request for the Volkswagen Golf expired")
    ]


# --- The trip clock --------------------------------------------------------------------------


def test_the_trip_clock_sweep_starts_and_completes_once(
    confirmed_booking, clock, django_capture_on_commit_callbacks
):
    tasks.run_trip_clock()
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.CONFIRMED  # not due yet
    clock.move_to(confirmed_booking.starts_at + datetime.timedelta(seconds=20), tick=False)
    with emails_run_inline(django_capture_on_commit_callbacks):
        tasks.run_trip_clock()
        tasks.run_trip_clock()
        tasks.start_trip(booking_id=confirmed_booking.pk)  # the ETA task, late: a no-op
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.ACTIVE
    clock.move_to(confirmed_booking.ends_at, tick=False)
    tasks.complete_trip(booking_id=confirmed_booking.pk)
    tasks.run_trip_clock()
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.COMPLETED
    assert [e.new_status for e in confirmed_booking.events.order_by("pk")] == [
        B.REQUESTED,
        B.CONFIRMED,
        B.ACTIVE,
        B.COMPLETED,
    ]


def test_a_missed_start_and_end_are_caught_up(confirmed_booking, clock):
    clock.move_to(confirmed_booking.ends_at + H, tick=False)  # the clock was down all trip
    tasks.run_trip_clock()
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.COMPLETED


def test_the_trip_clock_leaves_cancelled_trips_alone(confirmed_booking, renter, clock):
    services.booking_cancel(booking=confirmed_booking, user=renter)
    clock.move_to(confirmed_booking.starts_at, tick=False)
    tasks.run_trip_clock()
    tasks.start_trip(booking_id=confirmed_booking.pk)
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.CANCELLED


# --- The reminder ----------------------------------------------------------------------------


@contextmanager
def reminders_run_inline():
    def twice(**kwargs):
        tasks.send_trip_reminder(**kwargs)
        tasks.send_trip_reminder(**kwargs)

    with patch.object(tasks.send_trip_reminder, "delay", side_effect=twice):
        yield


def test_the_reminder_goes_once_an_hour_before(confirmed_booking, renter, mailoutbox, clock):
    with reminders_run_inline():
        clock.move_to(confirmed_booking.starts_at - 2 * H, tick=False)
        tasks.queue_trip_reminders()
        assert mailoutbox == []  # not due yet
        clock.move_to(confirmed_booking.starts_at - datetime.timedelta(minutes=59), tick=False)
        tasks.queue_trip_reminders()
        tasks.queue_trip_reminders()
    assert sent(mailoutbox) == [
        (renter.email, "[carshare] Your trip with the Volkswagen Golf starts within the hour")
    ]
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.reminder_sent_at == timezone.now()


def test_a_reminder_that_failed_to_send_goes_on_the_retry(confirmed_booking, mailoutbox, clock):
    clock.move_to(confirmed_booking.starts_at - datetime.timedelta(minutes=30), tick=False)
    with (
        patch.object(notifications, "send_booking_email", side_effect=SMTPException("busy")),
        pytest.raises(SMTPException),
    ):
        tasks.send_trip_reminder(booking_id=confirmed_booking.pk)
    assert Booking.objects.get(pk=confirmed_booking.pk).reminder_sent_at is None
    tasks.send_trip_reminder(booking_id=confirmed_booking.pk)
    tasks.send_trip_reminder(booking_id=confirmed_booking.pk)
    assert len(mailoutbox) == 1


def test_no_reminder_for_a_cancelled_trip(confirmed_booking, renter, mailoutbox, clock):
    services.booking_cancel(booking=confirmed_booking, user=renter)
    clock.move_to(confirmed_booking.starts_at - datetime.timedelta(minutes=30), tick=False)
    tasks.send_trip_reminder(booking_id=confirmed_booking.pk)
    assert [m for m in mailoutbox if "within the hour" in m.subject] == []


# --- A real worker ---------------------------------------------------------------------------


def wait_for(predicate, seconds: float = 10) -> bool:
    """Poll for what a real worker does in its own threads (not a clock to move)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_real_worker_sends_the_emails(celery_worker_thread, instant_car, renter, owner):
    booking = request_booking(instant_car, renter, starts_at=hour_from_now(days=3))
    assert wait_for(lambda: len(mail.outbox) >= 2)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([renter.email, owner.email])
    assert booking.status == B.CONFIRMED
