"""Booking emails: who hears of what, and how each message is put together.

Sending only; deciding that a message is due and making sure it goes once is the tasks' job.
Times in emails are in the car's time zone, like on the pages.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from bookings.models import Booking

RENTER, OWNER = "renter", "owner"
KINDS = ("requested", "confirmed", "declined", "expired", "cancelled", "reminder")


def recipients(booking: Booking, kind: str) -> list[str]:
    """The roles told of `kind`. An instant booking's owner never saw a request, so they hear
    of the confirmed booking instead; otherwise the owner confirmed it and needs no email."""
    if kind == "requested":
        return [OWNER]
    if kind == "confirmed":
        return [RENTER, OWNER] if booking.instant else [RENTER]
    if kind == "cancelled":
        return [RENTER, OWNER]
    if kind in ("declined", "expired", "reminder"):
        return [RENTER]
    raise ValueError(f"Unknown booking email {kind!r}")


def _subject(kind: str, role: str, booking: Booking) -> str:
    car = booking.car.title
    subjects = {
        ("requested", OWNER): _("New request for your %(car)s"),
        ("confirmed", RENTER): _("Your trip with the %(car)s is confirmed"),
        ("confirmed", OWNER): _("Your %(car)s has been booked"),
        ("declined", RENTER): _("Your request for the %(car)s was declined"),
        ("expired", RENTER): _("Your request for the %(car)s expired"),
        ("cancelled", RENTER): _("Your trip with the %(car)s is cancelled"),
        ("cancelled", OWNER): _("A booking of your %(car)s is cancelled"),
        ("reminder", RENTER): _("Your trip with the %(car)s starts within the hour"),
    }
    return settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + subjects[(kind, role)] % {"car": car}


def _booking_url(booking: Booking) -> str:
    try:
        return settings.SITE_URL + booking.get_absolute_url()
    except NoReverseMatch:  # the booking pages are not mounted (a test of this module alone)
        return settings.SITE_URL + "/"


def send_booking_email(booking: Booking, *, kind: str, role: str) -> None:
    """Send one booking email to the renter or the owner; errors propagate to the task."""
    user: User = booking.renter if role == RENTER else booking.car.owner
    context = {
        "kind": kind,
        "role": role,
        "user": user,
        "booking": booking,
        "car": booking.car,
        "renter": booking.renter,
        "owner": booking.car.owner,
        "time_zone": booking.car.time_zone,
        "booking_url": _booking_url(booking),
    }
    # The date filter shows the current time zone: make that the car's for this render.
    with timezone.override(ZoneInfo(booking.car.time_zone)):
        body = render_to_string(f"emails/bookings/{kind}_{role}.txt", context)
    EmailMessage(subject=_subject(kind, role, booking), body=body, to=[user.email]).send()
