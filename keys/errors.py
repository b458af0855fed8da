"""What keys refuses, and the words it refuses in: the bottom of keys, below every service.

Every module of keys that refuses raises a KeyRefused (the API's one handler answers with its
code); a refusal names times in the car's time zone, as the pages and emails do.
"""

from __future__ import annotations

import datetime

from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from carshare import times
from carshare.errors import DomainError
from keys.models import KeyStatus
from vehicles.models import Car

# Codes for a state of the world rather than the request: trying again later may work, so the
# API answers 409. not_allowed is a 403 and rate_limited a 429; every other code is a rule the
# input broke (400).
CONFLICT_CODES = {
    "key_not_active",
    "not_available",
    "override_required",
    "not_connected",
    "needs_reconnecting",
    "fallback_not_offered",
}


class KeyRefused(DomainError):
    """The rules refuse; str(error) can be shown as is and .code tells programs which rule.

    Codes: key_not_active (outside the window, revoked, expired), rate_limited (retry_after
    seconds), not_available (a service window overlaps a trip or block), no_such_user (a share
    to an unknown address; never shown to the sharer), not_eligible, invalid_window, not_allowed, plus vehicles' not_connected/needs_reconnecting.
    """

    def __init__(
        self, code: str, message: str | Promise, *, retry_after: int | None = None
    ) -> None:
        super().__init__(code, message, retry_after=retry_after)

    @classmethod
    def status_for(cls, code: str) -> int:
        if code == "rate_limited":
            return 429
        if code == "not_allowed":
            return 403  # the person can see the key, but the action is someone else's
        return 409 if code in CONFLICT_CODES else 400


class RecipientRefused(KeyRefused):
    """A refusal about the person a key would go to (no account, not verified, no licence, the
    owner, already holding one), as opposed to the sharer's own input. Pages and the API answer
    these exactly like a granted key, so that sharing cannot be used to find out who has an
    account; `remedy` says what the email to that address asks of them ("" for no email)."""

    def __init__(self, code: str, message: str, *, remedy: str) -> None:
        super().__init__(code, message)
        self.remedy = remedy


def local_time(car: Car, at: datetime.datetime) -> str:
    """`at` on the car's clock: the time alone today there, with the date on any other day."""
    zone = times.car_zone(car)
    local = at.astimezone(zone)
    if local.date() == timezone.now().astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%d %b %H:%M")


def key_ended_message(status: str) -> str:
    """What the holder is told about a key that ended, revoked or expired."""
    if status == KeyStatus.REVOKED:
        return _("This key was revoked.")
    return _("This key has expired.")


def trip_over_message(car: Car, lock_until: datetime.datetime) -> str:
    """What the holder is told about an unlock after the trip, while locking still works."""
    return _("The trip is over: you can only lock the car, until %(at)s.") % {
        "at": local_time(car, lock_until)
    }
