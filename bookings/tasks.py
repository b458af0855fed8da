"""Celery tasks of bookings: the trip clock, the sweeps and the emails.

The database says what is due; the broker is a doorbell. Tasks take ids by keyword, re-read
their rows and leave when the work is done or no longer wanted, so a second delivery (a
redelivered message, an ETA task and the sweep both firing) changes nothing.
"""

from __future__ import annotations

import datetime
import functools
import logging

from celery import shared_task
from django.utils import timezone

from bookings import notifications, selectors, services
from bookings.models import Booking, BookingStatus
from carshare import once
from keys import selectors as key_selectors

log = logging.getLogger(__name__)

MAIL_TRANSIENT = once.MAIL_TRANSIENT
# Three sweeps' worth (run_trip_clock runs every 30 s), so a missed sweep still leaves time.
START_SCHEDULE_AHEAD = datetime.timedelta(seconds=90)


# --- The trip clock --------------------------------------------------------------------------


@shared_task
def run_trip_clock() -> None:
    """Every 30 s from CELERY_BEAT_SCHEDULE: start due confirmed trips and complete due active
    ones. The ETA tasks below give precision; this catches whatever they missed."""
    now = timezone.now()
    for booking_id in selectors.bookings_due_start(now=now):
        services.booking_start(booking_id=booking_id)  # conditional: a no-op if done meanwhile
    # Trips starting before the next sweeps get their ETA task and staged unlock now (those
    # confirmed within the hour got them at confirmation): the start hits its second.
    for booking_id in selectors.bookings_starting_soon(now=now, within=START_SCHEDULE_AHEAD):
        services.booking_schedule_start(booking_id=booking_id)
    for booking_id in selectors.bookings_due_end(now=now):
        services.booking_complete(booking_id=booking_id)
    # Trips whose car never opened: cancelled by carshare, without a fee (the renter lost the
    # time at a locked car).
    for booking_id in key_selectors.trips_never_opened(now=now):
        services.booking_cancel_unopened(booking_id=booking_id)


@shared_task(acks_late=True)
def start_trip(booking_id: int) -> None:
    """ETA task at a trip's start (scheduled only when the start is less than an hour away)."""
    services.booking_start(booking_id=booking_id)


@shared_task(acks_late=True)
def complete_trip(booking_id: int) -> None:
    """ETA task at a trip's end (scheduled only when the end is less than an hour away)."""
    services.booking_complete(booking_id=booking_id)


# --- Requests nobody answered ----------------------------------------------------------------


@shared_task
def expire_unanswered_requests() -> int:
    """Every minute: mark overdue requests expired and tell their renters (on commit)."""
    return services.bookings_expire_unanswered(now=timezone.now())


# --- Emails ----------------------------------------------------------------------------------
# Each email goes once per (booking, kind, recipient) through carshare.once (a Redis mark);
# the reminder, which has a marker on Booking (reminder_sent_at), claims that instead.


def _email_key(booking_id: int, kind: str, role: str) -> str:
    return f"bookings:email:{booking_id}:{kind}:{role}"


@shared_task(**once.EMAIL_TASK_OPTIONS)
def send_booking_emails(booking_id: int, kind: str) -> None:
    """Tell the people concerned that a booking was requested, confirmed, declined, expired or
    cancelled; each of them gets one email however often this runs."""
    booking = Booking.objects.select_related("car__owner", "renter").filter(pk=booking_id).first()
    if booking is None:
        return
    for role in notifications.recipients(booking, kind):
        once.send_once(
            _email_key(booking_id, kind, role),
            functools.partial(notifications.send_booking_email, booking, kind=kind, role=role),
        )


@shared_task
def queue_trip_reminders() -> None:
    """Every minute: queue the reminder of each confirmed trip starting within the hour.
    Queuing one twice is harmless: the reminder claims its marker first."""
    for booking_id in selectors.bookings_due_reminder(now=timezone.now()):
        send_trip_reminder.delay(booking_id=booking_id)


@shared_task(**once.EMAIL_TASK_OPTIONS)
def send_trip_reminder(booking_id: int) -> None:
    """Remind the renter an hour before the start; one email, however often this runs."""
    now = timezone.now()
    # Claim with a conditional UPDATE before sending: of two deliveries only one matches.
    claimed = Booking.objects.filter(
        pk=booking_id,
        status=BookingStatus.CONFIRMED,
        reminder_sent_at__isnull=True,
        period__startswith__gt=now,
    ).update(reminder_sent_at=now)
    if not claimed:
        return  # reminded already, no longer confirmed, or started
    booking = Booking.objects.select_related("car__owner", "renter").get(pk=booking_id)
    try:
        notifications.send_booking_email(booking, kind="reminder", role=notifications.RENTER)
    except MAIL_TRANSIENT:
        Booking.objects.filter(pk=booking_id).update(reminder_sent_at=None)  # retry sends it
        raise
