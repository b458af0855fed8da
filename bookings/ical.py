"""The owner's private iCalendar feed of a car (RFC 5545), for syncing other calendars.

The feed URL carries a token derived from the car's public_id with SECRET_KEY (HMAC), so no
model field is needed: whoever has the URL can read the feed, nobody can guess it. The flip side
is that it cannot be reset on its own (rotating SECRET_KEY resets every feed); a per-car reset
would need a stored salt and is out of scope for now.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from bookings import selectors
from vehicles.models import Car

FEED_HMAC_PURPOSE = "carshare.bookings.ical-feed"
PRODID = "-//carshare//Car calendar//EN"


def feed_token(car: Car) -> str:
    return salted_hmac(FEED_HMAC_PURPOSE, str(car.public_id), algorithm="sha256").hexdigest()[:40]


def token_matches(car: Car, token: str) -> bool:
    return constant_time_compare(feed_token(car), token)


@dataclass(frozen=True)
class Event:
    uid: str
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    summary: str
    description: str = ""
    status: str = "CONFIRMED"  # VEVENT STATUS: TENTATIVE for a request awaiting an answer


def feed_events(car: Car) -> list[Event]:
    """The car's bookings, blocks and service windows from a month back on
    (selectors.calendar_feed_entries)."""
    events = []
    for entry in selectors.calendar_feed_entries(car=car):
        item = entry["obj"]
        if entry["kind"] == "block":
            summary = f"{car.title}: {item.get_reason_display()}"
            description, status = item.note, "CONFIRMED"
        elif entry["kind"] == "service":
            # The technician's name, never their email: whoever has the feed's URL reads it.
            who = item.holder.get_full_name()
            summary = f"{car.title}: {_('Service')}" + (f" ({who})" if who else "")
            description, status = item.note, "CONFIRMED"
        else:
            summary = f"{car.title}: {item.get_status_display()}"
            description = f"{item.price} {item.currency}"
            status = "TENTATIVE" if item.is_answerable else "CONFIRMED"
        events.append(
            Event(
                uid=f"{entry['uid']}@carshare",
                starts_at=entry["starts_at"],
                ends_at=entry["ends_at"],
                summary=summary,
                description=description,
                status=status,
            )
        )
    return events


def render_calendar(car: Car, events: Iterable[Event], *, now: datetime.datetime) -> str:
    stamp = _utc(now)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_text(car.title)}",
    ]
    for event in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{event.uid}",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{_utc(event.starts_at)}",
            f"DTEND:{_utc(event.ends_at)}",
            f"SUMMARY:{_text(event.summary)}",
            f"STATUS:{event.status}",
        ]
        if event.description:
            lines.append(f"DESCRIPTION:{_text(event.description)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)


def car_feed(car: Car) -> str:
    return render_calendar(car, feed_events(car), now=timezone.now())


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 §3.3.11)."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _fold(line: str, limit: int = 75) -> str:
    """Fold a content line at 75 octets (RFC 5545 §3.1), never inside a UTF-8 character."""
    parts: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        # The first line holds 75 octets; each continuation starts with a space, so 74 more.
        if size + width > (limit if not parts else limit - 1):
            parts.append(current)
            current, size = "", 0
        current += char
        size += width
    parts.append(current)
    return "\r\n ".join(parts)
