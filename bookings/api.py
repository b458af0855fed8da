"""The bookings part of the JSON API: request a car, answer and follow bookings, and a car's
busy times.

Every rule lives in bookings.services, as for the pages; this module parses the wire format,
finds the booking through the access selectors (a stranger gets 404, never 403) and lets a
BookingError through to the API's one handler, which answers with the error envelope: 409 when
the car is taken (`not_available`) or the move is not possible now (`not_allowed`), 400 for the
other rules, each with its own code (BookingError.status_for). Times
travel as ISO 8601 with an offset (or Z); a naive time is refused rather than guessed, and
answers give times in the car's time zone, with its offset.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, field_validator
from pydantic_core import PydanticCustomError

from accounts.models import User
from bookings import forms, selectors, services
from bookings.models import ALLOWED_MOVES, Booking, BookingEvent, BookingStatus
from carshare import apikit, times
from carshare.apikit import ApiRequest, QueryParams, limit_field, offset_field
from vehicles import api as vehicles_api
from vehicles import occupancy
from vehicles import selectors as vehicle_selectors

router = Router(tags=["bookings"])

B = BookingStatus
AVAILABILITY_DEFAULT_DAYS = 31
AVAILABILITY_MAX_DAYS = 92  # about a quarter: what a calendar shows, and a bounded query


# --- Times ----------------------------------------------------------------------------------


AwareDatetime = times.AwareDatetime
ISO_EXAMPLE = times.ISO_EXAMPLE


QueryDatetime = times.QueryDatetime


def _local(moment: datetime.datetime | None, zone: zoneinfo.ZoneInfo) -> datetime.datetime | None:
    return moment.astimezone(zone) if moment is not None else None


# --- Output ---------------------------------------------------------------------------------


class ErrorBody(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorBody


class BookingCarOut(Schema):
    id: UUID = Field(description="The car's public id.")
    title: str = Field(description="Make and model, as people write them.")
    licence_plate: str = Field(description="So the renter finds the right car.")
    address: str = Field(description="Pickup address.")
    time_zone: str = Field(description="IANA time zone: every time here is given in it.")


class PersonOut(Schema):
    name: str = Field(description="First name only; never an email address.")


class EventOut(Schema):
    at: datetime.datetime
    actor: Literal["renter", "owner", "admin", "system"] = Field(
        description="system: the trip clock or the expiry sweep."
    )
    old_status: str | None = Field(
        description="null for the request itself.", json_schema_extra={"enum": [*B.values, None]}
    )
    new_status: str = Field(json_schema_extra={"enum": list(B.values)})
    reason: str


class BookingOut(Schema):
    id: UUID = Field(description="The booking's public id, as used in every URL.")
    status: str = Field(
        description="requested → confirmed → active → completed; or declined, expired "
        "(the owner did not answer by respond_by), cancelled.",
        json_schema_extra={"enum": list(B.values)},
    )
    status_display: str = Field(description="The status for people, in English.")
    role: Literal["renter", "owner", "admin"] = Field(description="How you take part.")
    actions: list[Literal["approve", "decline", "cancel", "end"]] = Field(
        description="What you can do now, each a POST to /bookings/{id}/<action>."
    )
    car: BookingCarOut
    renter: PersonOut
    starts_at: datetime.datetime = Field(description="In the car's time zone.")
    ends_at: datetime.datetime = Field(description="In the car's time zone.")
    instant: bool = Field(description="Booked on an instant-book car: confirmed at once.")
    currency: Literal["EUR"]
    price: str = Field(description="The trip's price, fixed at request time.", examples=["58.00"])
    hourly_rate: str = Field(description="The car's price per hour at request time.")
    daily_rate: str = Field(description="The car's price per day at request time.")
    respond_by: datetime.datetime | None = Field(
        description="A request expires if the owner has not answered by then."
    )
    requested_at: datetime.datetime
    confirmed_at: datetime.datetime | None
    started_at: datetime.datetime | None
    ended_at: datetime.datetime | None
    cancelled_by: Literal["renter", "owner", "admin", "carshare"] | None = Field(
        description="Who cancelled: carshare when the car could not be opened at the start."
    )
    cancellation_fee: str | None = Field(description="What the renter pays after cancelling.")
    refund: str | None = Field(description="What the renter gets back after cancelling.")


class BookingDetailOut(BookingOut):
    events: list[EventOut] = Field(description="The booking's history, oldest first.")


class BookingPage(Schema):
    count: int = Field(description="How many bookings match, over all pages.")
    next: str | None = Field(description="URL of the next page, or null on the last one.")
    previous: str | None = Field(description="URL of the previous page, or null on the first.")
    results: list[BookingOut]


class BusyOut(Schema):
    starts_at: datetime.datetime
    ends_at: datetime.datetime


class AvailabilityOut(Schema):
    car: UUID
    time_zone: str
    from_: datetime.datetime = Field(alias="from")
    to: datetime.datetime
    busy: list[BusyOut] = Field(
        description="Times the car cannot be booked, oldest first; what takes it is not said."
    )


def _money(amount: Decimal | None) -> str | None:
    return f"{amount:.2f}" if amount is not None else None


def _role(booking: Booking, user: User) -> Literal["renter", "owner", "admin"]:
    if booking.renter_id == user.pk:
        return "renter"
    if booking.car.owner_id == user.pk:
        return "owner"
    return "admin"  # booking_for_participant lets staff through


def _actions(booking: Booking, role: str) -> list[str]:
    actions = []
    if role == "owner" and booking.is_answerable:
        actions += ["approve", "decline"]
    if booking.is_cancellable:
        actions.append("cancel")
    if role == "renter" and B.COMPLETED in ALLOWED_MOVES.get(booking.status, set()):
        actions.append("end")
    return actions


def _actor(event: BookingEvent, booking: Booking) -> str:
    if event.actor_id is None:
        return "system"
    if event.actor_id == booking.renter_id:
        return "renter"
    if event.actor_id == booking.car.owner_id:
        return "owner"
    return "admin"


def _booking_out(booking: Booking, *, viewer: User, events: bool = False) -> dict[str, Any]:
    car = booking.car
    zone = forms.car_zone(car)
    role = _role(booking, viewer)
    out: dict[str, Any] = {
        "id": booking.public_id,
        "status": booking.status,
        "status_display": str(booking.get_status_display()),
        "role": role,
        "actions": _actions(booking, role),
        "car": {
            "id": car.public_id,
            "title": car.title,
            "licence_plate": car.licence_plate,
            "address": car.address,
            "time_zone": car.time_zone,
        },
        "renter": {"name": booking.renter.name.split(" ")[0] if booking.renter.name else ""},
        "starts_at": _local(booking.starts_at, zone),
        "ends_at": _local(booking.ends_at, zone),
        "instant": booking.instant,
        "currency": booking.currency,
        "price": _money(booking.price),
        "hourly_rate": _money(booking.hourly_rate),
        "daily_rate": _money(booking.daily_rate),
        "respond_by": _local(booking.respond_by, zone),
        "requested_at": _local(booking.requested_at, zone),
        "confirmed_at": _local(booking.confirmed_at, zone),
        "started_at": _local(booking.started_at, zone),
        "ended_at": _local(booking.ended_at, zone),
        "cancelled_by": booking.cancelled_by or None,
        "cancellation_fee": _money(booking.cancellation_fee),
        "refund": _money(booking.refund),
    }
    if events:
        out["events"] = [
            {
                "at": _local(event.at, zone),
                "actor": _actor(event, booking),
                "old_status": event.old_status or None,
                "new_status": event.new_status,
                "reason": event.reason,
            }
            for event in booking.events.all()
        ]
    return out


# --- Input ----------------------------------------------------------------------------------


class BookingIn(Schema):
    car: UUID = Field(description="The car's public id.")
    starts_at: AwareDatetime = Field(description=f"With an offset or Z, e.g. {ISO_EXAMPLE}.")
    ends_at: AwareDatetime = Field(description="With an offset or Z; after starts_at.")


class ReasonIn(BaseModel):
    # A plain pydantic model, not a ninja Schema: Schema reads attributes off any value, so
    # a body of [1] or "no" would pass as an empty reason instead of being refused.
    reason: str = Field("", max_length=500, description="Optional; shown to the other party.")


_ANY_STATUS = "|".join(B.values)


class BookingListQuery(QueryParams):
    role: Literal["renter", "owner", "all"] = Field(
        "all", description="Bookings you made (renter), of your cars (owner), or both."
    )
    status: str = Field(
        "",
        description="Only these statuses, comma-separated, e.g. requested,confirmed.",
        pattern=rf"^(|({_ANY_STATUS})(,({_ANY_STATUS}))*)$",
        json_schema_extra={"examples": ["requested,confirmed"]},
    )
    limit: int = limit_field()
    offset: int = offset_field("Bookings to skip.")

    @field_validator("status")
    @classmethod
    def _known_statuses(cls, value: str) -> str:
        wanted = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [part for part in wanted if part not in B.values]
        if unknown:
            raise PydanticCustomError("status", "Unknown status; use: " + ", ".join(B.values) + ".")
        return ",".join(wanted)


class AvailabilityQuery(QueryParams):
    from_: QueryDatetime = Field(
        None, alias="from", description=f"With an offset or Z, e.g. {ISO_EXAMPLE}. Default: now."
    )
    to: QueryDatetime = Field(
        None,
        description=f"Default: {AVAILABILITY_DEFAULT_DAYS} days after `from`; at most "
        f"{AVAILABILITY_MAX_DAYS} days after it.",
    )


# --- Reads ------------------------------------------------------------------------------------


def _bookings_of(*, user: User, role: str, statuses: list[str]) -> QuerySet[Booking]:
    """The user's bookings as renter, as owner of the car, or both; latest trip first."""
    bookings = selectors.bookings_of_user(user=user)
    if role == "renter":
        bookings = bookings.filter(renter=user)
    elif role == "owner":
        bookings = bookings.filter(car__owner=user)
    if statuses:
        bookings = bookings.filter(status__in=statuses)
    return bookings


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/bookings",
    response={201: BookingOut, 400: ErrorOut, 409: ErrorOut},
    summary="Book a car",
)
def booking_create(request: ApiRequest, payload: BookingIn) -> Status[dict[str, Any]]:
    """Request a public car (GET /cars lists them; any other car is 404) for
    [starts_at, ends_at). On an instant-book car the booking is confirmed at once; otherwise it
    waits for the owner until respond_by. 409
    `not_available` when the car is taken for any part of that time (another trip, the owner's
    block, or the buffer between trips); 400 with a code for each rule (too_soon, too_short,
    too_long, not_connected, not_lockable, own_car, no_licence, email_unverified, invalid_period,
    ...)."""
    car = vehicle_selectors.car_for_viewer(user=request.auth, public_id=payload.car)
    booking = services.booking_request(
        renter=request.auth, car=car, starts_at=payload.starts_at, ends_at=payload.ends_at
    )
    return Status(201, _booking_out(booking, viewer=request.auth))


@router.get("/bookings", response=BookingPage, summary="Your bookings")
def booking_list(request: ApiRequest, params: Query[BookingListQuery]) -> dict[str, Any]:
    """Bookings you made and bookings of your cars, latest trip first, a page at a time."""
    statuses = [status for status in params.status.split(",") if status]
    bookings = _bookings_of(user=request.auth, role=params.role, statuses=statuses)
    return apikit.page(
        request,
        bookings,
        limit=params.limit,
        offset=params.offset,
        out=lambda page: [_booking_out(booking, viewer=request.auth) for booking in page],
    )


@router.get("/bookings/{booking_id}", response=BookingDetailOut, summary="One booking")
def booking_detail(request: ApiRequest, booking_id: UUID) -> dict[str, Any]:
    """A booking you made or one of your cars' bookings, with its history."""
    booking = selectors.booking_for_participant(user=request.auth, public_id=booking_id)
    return _booking_out(booking, viewer=request.auth, events=True)


def _act(request: ApiRequest, move: Callable[[], Booking]) -> Status[dict[str, Any]]:
    """Run one lifecycle service: the booking as it now stands (a refusal is the API's
    error envelope, carshare/api.py)."""
    booking = move()
    return Status(200, _booking_out(booking, viewer=request.auth, events=True))


@router.post(
    "/bookings/{booking_id}/approve",
    response={200: BookingDetailOut, 400: ErrorOut, 409: ErrorOut},
    summary="Approve a request for your car",
)
def booking_approve(request: ApiRequest, booking_id: UUID) -> Status[dict[str, Any]]:
    """Confirm a request for your car. 409 `not_allowed` once it is no longer waiting
    (answered, cancelled, or expired)."""
    booking = selectors.booking_for_owner(user=request.auth, public_id=booking_id)
    return _act(request, lambda: services.booking_confirm(booking=booking, user=request.auth))


@router.post(
    "/bookings/{booking_id}/decline",
    response={200: BookingDetailOut, 400: ErrorOut, 409: ErrorOut},
    summary="Decline a request for your car",
)
def booking_decline(
    request: ApiRequest, booking_id: UUID, payload: ReasonIn | None = None
) -> Status[dict[str, Any]]:
    """Decline a request for your car, optionally saying why; the car is free again at once."""
    booking = selectors.booking_for_owner(user=request.auth, public_id=booking_id)
    reason = payload.reason if payload is not None else ""
    return _act(
        request,
        lambda: services.booking_decline(booking=booking, user=request.auth, reason=reason),
    )


@router.post(
    "/bookings/{booking_id}/cancel",
    response={200: BookingDetailOut, 400: ErrorOut, 409: ErrorOut},
    summary="Cancel a booking",
)
def booking_cancel(
    request: ApiRequest, booking_id: UUID, payload: ReasonIn | None = None
) -> Status[dict[str, Any]]:
    """Cancel a requested or confirmed booking, as its renter or the car's owner. The answer
    carries cancellation_fee and refund: a renter cancels free until 24 h before the start and
    pays half after that; an owner's cancellation refunds the renter in full."""
    booking = selectors.booking_for_participant(user=request.auth, public_id=booking_id)
    reason = payload.reason if payload is not None else ""
    return _act(
        request,
        lambda: services.booking_cancel(booking=booking, user=request.auth, reason=reason),
    )


@router.post(
    "/bookings/{booking_id}/end",
    response={200: BookingDetailOut, 400: ErrorOut, 409: ErrorOut},
    summary="End your trip now",
)
def booking_end(request: ApiRequest, booking_id: UUID) -> Status[dict[str, Any]]:
    """End an active trip early, as its renter: the car locks and the booking completes."""
    booking = selectors.booking_for_participant(user=request.auth, public_id=booking_id)
    return _act(request, lambda: services.booking_end(booking=booking, user=request.auth))


@router.get(
    "/cars/{car_id}/availability",
    response=AvailabilityOut,
    auth=None,
    by_alias=True,  # `from` is a Python keyword: the schema calls it from_
    summary="When a car is taken",
    tags=["cars"],
)
def car_availability(
    request: HttpRequest, car_id: UUID, params: Query[AvailabilityQuery]
) -> dict[str, Any]:
    """The times a listed car cannot be booked between `from` and `to` (at most
    92 days apart), each as {starts_at, ends_at} in the car's time zone. Public: what takes the
    car (a trip, the owner's own use, the buffer after a trip) is not said."""
    viewer = vehicles_api.optional_viewer(request)
    car = vehicle_selectors.car_for_viewer(user=viewer, public_id=car_id)
    start = params.from_ or timezone.now()
    end = params.to or start + datetime.timedelta(days=AVAILABILITY_DEFAULT_DAYS)
    if end <= start:
        raise ValidationError({"to": ["`to` must be after `from`."]})
    if end - start > datetime.timedelta(days=AVAILABILITY_MAX_DAYS):
        raise ValidationError({"to": [f"Ask for at most {AVAILABILITY_MAX_DAYS} days at a time."]})
    zone = forms.car_zone(car)
    busy: list[list[datetime.datetime]] = []
    for busy_start, busy_end, _kind in sorted(
        occupancy.busy_intervals(car=car, start=start, end=end), key=lambda item: item[0]
    ):
        # Back-to-back holds (a trip, then its buffer, then a block) read as one stretch, which
        # is also all a stranger should learn of them.
        if busy and busy_start <= busy[-1][1]:
            busy[-1][1] = max(busy[-1][1], busy_end)
        else:
            busy.append([busy_start, busy_end])
    return {
        "car": car.public_id,
        "time_zone": car.time_zone,
        "from": _local(start, zone),
        "to": _local(end, zone),
        "busy": [
            {"starts_at": _local(lower, zone), "ends_at": _local(upper, zone)}
            for lower, upper in busy
        ],
    }
