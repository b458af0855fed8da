"""The keys part of the JSON API: your keys, using one (unlock, lock), sharing a trip key with a
co-driver, revoking; and the owner's side: service keys, every key of a car, its audit log, and
unlocking the car themselves (during someone else's trip only by a recorded override).

Every rule lives in keys.grants and keys.use, as for the pages; this module parses the wire
format, finds the key or car through the access selectors (whoever may not see it gets 404,
never 403) and lets a KeyRefused through to the API's one handler, which answers with the error
envelope, keeping its code (KeyRefused.status_for):

- 409 for the state of things, where trying later may work: `key_not_active` (outside the
  window, revoked, expired), `not_available` (a service window over a trip or block),
  `override_required`, and the car's `not_connected` / `needs_reconnecting`;
- 429 `rate_limited`, with Retry-After in seconds;
- 403 `not_allowed`: you can see the key, but the action is someone else's (revoking a trip
  key, sharing a co-driver's key);
- 400 for a rule the input broke: `not_eligible` (for a service key also when the address has no
  verified account: the answer is the same whether it has an account or not), `invalid_window`; malformed
  input is the API's usual 400 `invalid` with fields.

Times travel as ISO 8601 with an offset (or Z), as in the bookings API: a naive time is refused
rather than guessed. Answers give times in the car's time zone, with its offset.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

from django.http import Http404
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, StrictBool

from accounts.models import User
from carshare import apikit, times
from carshare.apikit import ApiRequest, QueryParams, limit_field, offset_field
from carshare.errors import DomainError
from keys import commands as key_commands
from keys import grants, ladder, selectors, use
from keys.models import (
    LIVE_STATUSES,
    AuditAction,
    AuditEntry,
    AuditVia,
    DigitalKey,
    KeyKind,
    KeyStatus,
    StartUnlockStatus,
)
from vehicles import commands as vehicle_commands
from vehicles import selectors as vehicle_selectors
from vehicles.api_commands import CommandEnvelope, ErrorOut, StatusOut, command_out
from vehicles.cloud import connections
from vehicles.models import CommandAction, CommandStatus, VehicleCommand

router = Router(tags=["keys"])


# --- Times ----------------------------------------------------------------------------------


AwareDatetime = times.AwareDatetime
ISO_EXAMPLE = times.ISO_EXAMPLE


def _local(moment: datetime.datetime | None, zone: zoneinfo.ZoneInfo) -> datetime.datetime | None:
    return moment.astimezone(zone) if moment is not None else None


# --- Output ---------------------------------------------------------------------------------


class KeyCarOut(Schema):
    id: UUID = Field(description="The car's public id.")
    title: str = Field(description="Make and model, as people write them.")
    time_zone: str = Field(description="IANA time zone: every time of the key is given in it.")


class HolderOut(Schema):
    name: str = Field(description="First name only.")
    email: str | None = Field(
        description="Shown to the holder, the car's owner and the renter who shared the key "
        "(who typed it in); null for anyone else."
    )


class PersonOut(Schema):
    name: str = Field(description="First name only; never an email address.")


class KeyOut(Schema):
    id: UUID = Field(description="The key's public id, as used in every URL.")
    kind: str = Field(
        description="trip: the renter's key for a booking; shared: a co-driver's, cut from a "
        "trip key; service: a technician's, for a window the owner chose.",
        json_schema_extra={"enum": list(KeyKind.values)},
    )
    status: str = Field(
        description="issued → active → expired, or revoked. A key works only while active "
        "(or issued, opened by its first use) and inside its window.",
        json_schema_extra={"enum": list(KeyStatus.values)},
    )
    state: Literal["active", "upcoming", "past"] = Field(
        description="active: its window is open now (lock grace included); upcoming: it opens "
        "later; past: over, revoked or expired."
    )
    car: KeyCarOut
    holder: HolderOut
    valid_from: datetime.datetime = Field(description="Unlock and lock from this time.")
    valid_until: datetime.datetime = Field(description="Unlock until this time.")
    lock_until: datetime.datetime = Field(
        description="Lock (never unlock) until this time: the grace after the window."
    )
    may_unlock_now: bool = Field(description="POST /keys/{id}/unlock would be accepted now.")
    may_lock_now: bool = Field(description="POST /keys/{id}/lock would be accepted now.")
    reason_unavailable: str | None = Field(
        description="Why unlocking is not possible now, for people (e.g. 'This key works from "
        "14:00.'); null when it is."
    )
    booking_id: UUID | None = Field(
        description="The public id of the key's booking (trip and shared keys); null for "
        "service keys."
    )
    shared_by: PersonOut | None = Field(description="Who shared it (shared keys); else null.")
    note: str = Field(description="The owner's note on a service key, e.g. 'cleaning'.")
    created_at: datetime.datetime
    ended_at: datetime.datetime | None = Field(description="When it expired or was revoked.")
    revoke_reason: str = Field(description="Why it was revoked; empty otherwise.")


class KeyPage(Schema):
    count: int = Field(description="How many keys match, over all pages.")
    next: str | None = Field(description="URL of the next page, or null on the last one.")
    previous: str | None = Field(description="URL of the previous page, or null on the first.")
    results: list[KeyOut]


class AuditOut(Schema):
    at: datetime.datetime = Field(description="When it was asked for, in the car's time zone.")
    staged_for: datetime.datetime | None = Field(
        description="A command staged ahead (the unlock at a trip start): when it was due."
    )
    car_confirmed_at: datetime.datetime | None = Field(
        description="When the car reported the asked-for state (opened, or locked); null until "
        "then, or when nothing was asked of the car."
    )
    action: str = Field(json_schema_extra={"enum": list(AuditAction.values)})
    allowed: bool
    code: str = Field(
        description="ok, or why not: key_not_active, rate_limited, override_required, "
        "not_allowed, not_connected, ..."
    )
    detail: str = Field(description="The refusal's message, an override's reason, a recipient.")
    via: str = Field(
        description="Where the attempt came from: web, api, admin; system: the trip or key "
        "clock; owner: the owner's own lock or unlock, outside any key.",
        json_schema_extra={"enum": list(AuditVia.values)},
    )
    actor: PersonOut | None = Field(description="Who tried; null for the system.")
    key_id: UUID | None = Field(description="The key used or acted on, if any.")
    command_id: UUID | None = Field(
        description="The vehicle command it queued, to follow with GET /commands/{id}."
    )
    command_status: str | None = Field(
        description="Where that command stands now (as GET /commands/{id} says); null when "
        "nothing was asked of the car.",
        json_schema_extra={"enum": [*CommandStatus.values, None]},
    )
    command_error: str = Field(
        description="Why that command failed or expired, in words for people; empty otherwise."
    )


class AuditPage(Schema):
    count: int = Field(description="How many entries the car's log holds.")
    next: str | None = Field(description="URL of the next page, or null on the last one.")
    previous: str | None = Field(description="URL of the previous page, or null on the first.")
    results: list[AuditOut]


def _first_name(user: User) -> str:
    return user.name.split(" ")[0] if user.name else ""


def _state(key: DigitalKey, now: datetime.datetime) -> str:
    # As keys_of_holder sorts them, so a filtered list and this field always agree.
    if key.status in LIVE_STATUSES and key.lock_until > now:
        return "active" if key.valid_from <= now else "upcoming"
    return "past"


def _key_out(key: DigitalKey, *, viewer: User, now: datetime.datetime) -> dict[str, Any]:
    car = key.car
    zone = times.car_zone(car)
    sharer = key.parent.holder if key.kind == KeyKind.SHARED and key.parent else None
    # The sharer typed the co-driver's email in, so showing it back tells them nothing new.
    sees_email = viewer.is_staff or viewer.pk in (
        key.holder_id,
        car.owner_id,
        sharer.pk if sharer else None,
    )
    unlock_refusal = key_commands.key_refusal(key=key, action=CommandAction.UNLOCK, now=now)
    lock_refusal = key_commands.key_refusal(key=key, action=CommandAction.LOCK, now=now)
    return {
        "id": key.public_id,
        "kind": key.kind,
        "status": key.status,
        "state": _state(key, now),
        "car": {"id": car.public_id, "title": car.title, "time_zone": car.time_zone},
        "holder": {
            "name": _first_name(key.holder),
            "email": key.holder.email if sees_email else None,
        },
        "valid_from": _local(key.valid_from, zone),
        "valid_until": _local(key.valid_until, zone),
        "lock_until": _local(key.lock_until, zone),
        "may_unlock_now": unlock_refusal is None,
        "may_lock_now": lock_refusal is None,
        "reason_unavailable": str(unlock_refusal) if unlock_refusal else None,
        "booking_id": key.booking_public_id,
        "shared_by": {"name": _first_name(sharer)} if sharer else None,
        "note": key.note,
        "created_at": _local(key.created_at, zone),
        "ended_at": _local(key.ended_at, zone),
        "revoke_reason": key.revoke_reason,
    }


def _keys_out(keys: Sequence[DigitalKey], *, viewer: User) -> list[dict[str, Any]]:
    now = timezone.now()
    return [_key_out(key, viewer=viewer, now=now) for key in keys]


def _one_key_out(key: DigitalKey, *, viewer: User) -> dict[str, Any]:
    return _keys_out([key], viewer=viewer)[0]


def _audit_out(entry: AuditEntry, *, zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    return {
        "at": _local(entry.at, zone),
        "staged_for": _local(entry.staged_for, zone),
        "car_confirmed_at": _local(getattr(entry, "car_confirmed_at", None), zone),
        "action": entry.action,
        "allowed": entry.allowed,
        "code": entry.code,
        "detail": entry.detail,
        "via": entry.via,
        "actor": {"name": _first_name(entry.actor)} if entry.actor else None,
        "key_id": entry.key.public_id if entry.key else None,
        "command_id": entry.command_public_id,
        "command_status": getattr(entry, "car_command_status", None),
        "command_error": getattr(entry, "car_command_error", None) or "",
    }


# --- Input ----------------------------------------------------------------------------------

# Plain pydantic models, not ninja Schemas: Schema reads attributes off any value, so a body of
# [1] or "no" would pass as an empty object instead of being refused.


class ShareIn(BaseModel):
    email: str = Field(max_length=254, description="The co-driver's carshare account email.")
    starts_at: AwareDatetime | None = Field(
        None, description=f"Default: the trip key's start. With an offset, e.g. {ISO_EXAMPLE}."
    )
    ends_at: AwareDatetime | None = Field(None, description="Default: the trip key's end.")


class ServiceKeyIn(BaseModel):
    email: str = Field(max_length=254, description="The technician's carshare account email.")
    starts_at: AwareDatetime = Field(description=f"With an offset or Z, e.g. {ISO_EXAMPLE}.")
    ends_at: AwareDatetime = Field(description="After starts_at; at most 14 days later.")
    note: str = Field("", max_length=200, description="What it is for, e.g. 'cleaning'.")


class RevokeIn(BaseModel):
    reason: str = Field("", max_length=200, description="Optional; shown to the holder.")


class OwnerUnlockIn(BaseModel):
    # A real JSON boolean: "yes" or 1 is refused, not read as a confirmed override.
    override: StrictBool = Field(
        False, description="Confirm unlocking during someone else's trip or service window."
    )
    reason: str = Field(
        "", max_length=300, description="Why; required with override, and shown to the holder."
    )


class KeyListQuery(QueryParams):
    state: Literal["active", "upcoming", "past"] | None = Field(
        None, description="Only keys open now, opening later, or over (the latest 50)."
    )
    limit: int = limit_field()
    offset: int = offset_field("Keys to skip.")


class PageQuery(QueryParams):
    limit: int = limit_field()
    offset: int = offset_field("Items to skip.")


# --- A holder's keys --------------------------------------------------------------------------


@router.get("/keys", response=KeyPage, summary="Your keys")
def key_list(request: ApiRequest, params: Query[KeyListQuery]) -> dict[str, Any]:
    """Keys you hold: open now, then coming up (soonest first), then past (latest first, the
    last 50), a page at a time. Keys of your own cars are under GET /cars/{id}/keys."""
    groups = selectors.keys_of_holder(user=request.auth)
    states = [params.state] if params.state else ["active", "upcoming", "past"]
    keys = [key for state in states for key in groups[state]]
    return apikit.page(
        request,
        keys,
        limit=params.limit,
        offset=params.offset,
        out=lambda page: _keys_out(page, viewer=request.auth),
    )


@router.get("/keys/{key_id}", response=KeyOut, summary="One key")
def key_detail(request: ApiRequest, key_id: UUID) -> dict[str, Any]:
    """A key you hold, a key to your car, or a key you shared; anyone else gets 404."""
    key = selectors.key_for_viewer(user=request.auth, public_id=key_id)
    return _one_key_out(key, viewer=request.auth)


def _use(request: ApiRequest, key_id: UUID, action: str) -> Status[dict[str, Any]]:
    key = selectors.key_for_holder(user=request.auth, public_id=key_id)
    command: VehicleCommand = use.car_command_request(
        key=key, user=request.auth, action=action, via="api"
    )
    return Status(202, {"command": command_out(command, car_public_id=key.car.public_id)})


@router.post(
    "/keys/{key_id}/unlock",
    response={202: CommandEnvelope, 409: ErrorOut, 429: ErrorOut},
    summary="Unlock the car with your key",
)
def key_unlock(request: ApiRequest, key_id: UUID) -> Status[dict[str, Any]]:
    """Ask for the key's car to be unlocked; only its holder may (anyone else gets 404, the
    owner too). Answers at once with the queued command: follow it with GET /commands/{id}.
    409 `key_not_active` outside the window (with when it opens, or that only locking is left
    in the grace after the end), 409 `not_connected` / `needs_reconnecting` when the car cannot
    be reached, 429 `rate_limited` with Retry-After (seconds) after too many unlocks."""
    return _use(request, key_id, CommandAction.UNLOCK)


@router.post(
    "/keys/{key_id}/lock",
    response={202: CommandEnvelope, 409: ErrorOut},
    summary="Lock the car with your key",
)
def key_lock(request: ApiRequest, key_id: UUID) -> Status[dict[str, Any]]:
    """Ask for the key's car to be locked: inside the window and through the grace after it.
    As unlock otherwise (holder only, 202 with the command, 409 `key_not_active`)."""
    return _use(request, key_id, CommandAction.LOCK)


class StartOut(Schema):
    status: str = Field(
        description="pending: carshare is opening the car (staged for the start, or trying a "
        "car that does not answer); opened: the car reported itself unlocked (or accepted the "
        "unlock and never reported); failed: the start's unlock gave up (the ladder is open); "
        "cancelled: the key ended first.",
        json_schema_extra={"enum": list(StartUnlockStatus.values)},
    )
    starts_at: datetime.datetime = Field(description="When the car opens by itself.")
    attempts: int = Field(description="How many times the unlock was sent so far.")
    sending_now: bool = Field(description="An attempt is on its way to the car right now.")
    next_attempt_at: datetime.datetime | None = Field(
        description="When the next attempt goes, while carshare waits out a pause; else null."
    )
    problem: str = Field(description="What the car or its cloud said last, for people.")
    may_say_at_car: bool = Field(
        description="POST /keys/{id}/at-car would be accepted now (the trip has started, the "
        "key opens the car, and the car has not opened)."
    )
    at_car_at: datetime.datetime | None = Field(description="When you said you were at the car.")
    owner_asked_at: datetime.datetime | None = Field(
        description="When the owner was asked to unlock the car for you."
    )
    opened_at: datetime.datetime | None = Field(description="When the car opened.")


class AtCarOut(Schema):
    retry: Literal["now", "in_flight", "sent"] = Field(
        description="now: the start's unlock, waiting out a pause, goes at once (as soon as the "
        "car maker allows another command); in_flight: it is on its way; sent: a new unlock "
        "under your key (the start's had ended), audited and rate-limited like any."
    )
    owner_asked: bool = Field(description="The owner is asked (once) to unlock it for you.")
    message: str = Field(description="What to tell the person, in their words.")
    start: StartOut | None = Field(description="The start unlock now; null without one.")


def _start_out(key: DigitalKey, *, now: datetime.datetime) -> dict[str, Any]:
    start = ladder.start_unlock_of(key=key)
    if start is None:
        raise Http404("This key's trip has no unlock at its start.")
    zone = times.car_zone(key.car)
    command = start.command
    waiting = command is not None and command.status == CommandStatus.QUEUED
    return {
        "status": start.status,
        "starts_at": _local(start.starts_at, zone),
        "attempts": command.attempts if command else 0,
        "sending_now": command is not None and command.status == CommandStatus.SENT,
        "next_attempt_at": _local(command.next_attempt_at, zone)
        if command is not None and waiting
        else None,
        "problem": start.last_problem or (command.error_message if command else ""),
        "may_say_at_car": ladder.at_car_offered(key=key, start=start, now=now),
        "at_car_at": _local(start.at_car_at, zone),
        "owner_asked_at": _local(start.owner_asked_at, zone),
        "opened_at": _local(start.opened_at, zone),
    }


@router.get(
    "/keys/{key_id}/start",
    response={200: StartOut, 404: ErrorOut},
    summary="The unlock at your trip's start",
)
def key_start(request: ApiRequest, key_id: UUID) -> dict[str, Any]:
    """How the car's unlock at the start of your trip stands: each attempt while carshare
    reaches a car that does not answer, what the car said, and whether you can say you are at
    the car. The key's holder only (a co-driver sees the trip's); anyone else gets 404, as does
    a trip without an unlock at its start."""
    key = selectors.key_for_holder(user=request.auth, public_id=key_id)
    return _start_out(key, now=timezone.now())


@router.post(
    "/keys/{key_id}/at-car",
    response={202: AtCarOut, 404: ErrorOut, 409: ErrorOut, 429: ErrorOut},
    summary="I'm at the car and it won't open",
)
def key_at_car(request: ApiRequest, key_id: UUID) -> Status[dict[str, Any]]:
    """Say you are at the car and it will not open: carshare tries again at once and asks the
    owner (once) to unlock it for you and to call you. Holder only (anyone else gets 404). 409
    `key_not_active` outside the key's window; 429 `rate_limited` when a new unlock of yours
    would exceed the limits."""
    key = selectors.key_for_holder(user=request.auth, public_id=key_id)
    done = ladder.at_car(key=key, user=request.auth, via="api")
    body = {
        "retry": done.retry,
        "owner_asked": done.owner_asked,
        "message": ladder.at_car_words(done, owner=key.car.owner),
    }
    try:
        body["start"] = _start_out(key, now=timezone.now())
    except Http404:
        body["start"] = None
    return Status(202, body)


class FallbackOut(Schema):
    instructions: str = Field(
        description="What the owner left for a car that will not open remotely (a lockbox "
        "code, where a spare key is). Every request is in the car's audit log."
    )


@router.post(
    "/keys/{key_id}/fallback",
    response={200: FallbackOut, 404: ErrorOut, 409: ErrorOut},
    summary="The car's fallback, at a car that won't open",
)
def key_fallback(request: ApiRequest, key_id: UUID) -> dict[str, Any]:
    """The owner's fallback for the car, for the key's holder at a car that would not open:
    once the trip has started and you said you are at the car (POST /keys/{id}/at-car) or the
    start's unlock gave up, while the key opens the car. Audited, allowed or not. 409
    `fallback_not_offered` otherwise; 404 for anyone but the holder."""
    key = selectors.key_for_holder(user=request.auth, public_id=key_id)
    return {"instructions": ladder.fallback_reveal(key=key, user=request.auth, via="api")}


class ShareOut(Schema):
    email: str = Field(description="The address the key was shared with, as sent.")
    message: str = Field(description="What to tell the sharer; the same whatever became of it.")


@router.post(
    "/keys/{key_id}/share",
    response={202: ShareOut, 400: ErrorOut, 403: ErrorOut, 409: ErrorOut},
    summary="Share your trip key with a co-driver",
)
def key_share(request: ApiRequest, key_id: UUID, payload: ShareIn) -> Status[dict[str, Any]]:
    """Offer a co-driver a key for all of your trip or part of it; it ends with the trip.
    Holder of the trip key only (anyone else gets 404). 202 with the same answer whether or not
    the address belongs to someone who can receive it (a carshare account with a verified email
    and a driving licence valid through the trip): they get the key and an email, or an email
    saying what they need first. The keys actually given are in GET /keys/{id}/shared.
    400 `not_eligible` (your own email, at most 5 co-drivers) or `invalid_window` (not inside
    the trip, or already over); 403 `not_allowed` for a key that is not a trip key; 409
    `key_not_active` once the trip is over or its key revoked."""
    key = selectors.key_for_holder(user=request.auth, public_id=key_id)
    grants.key_share_offer(
        key=key,
        user=request.auth,
        email=payload.email,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        via="api",
    )
    # Nothing about the key itself: see grants.share_answer().
    email = payload.email.strip()
    return Status(202, {"email": email, "message": grants.share_answer(email=email)})


@router.get(
    "/keys/{key_id}/shared", response=list[KeyOut], summary="The co-drivers' keys of your trip"
)
def key_shared_list(request: ApiRequest, key_id: UUID) -> list[dict[str, Any]]:
    """Every key cut from your trip key (any status), earliest window first: the answer to
    POST /keys/{id}/share does not say whether a key was given, this does. At most a handful
    (5 live at once), so not paged. Holder of the trip key only (anyone else gets 404)."""
    key = selectors.key_for_holder(user=request.auth, public_id=key_id)
    return _keys_out(list(selectors.shared_keys_of(key=key)), viewer=request.auth)


@router.post(
    "/keys/{key_id}/revoke",
    response={200: KeyOut, 403: ErrorOut, 409: ErrorOut},
    summary="Revoke a key",
)
def key_revoke(
    request: ApiRequest, key_id: UUID, payload: RevokeIn | None = None
) -> Status[dict[str, Any]]:
    """End a key now: a shared key by the renter who shared it (or its holder, handing it
    back), a service key by the car's owner. A trip key ends with its booking: cancel that
    instead. 403 `not_allowed` when you can see the key but it is not yours to revoke (anyone
    who cannot see it gets 404); 409 `key_not_active` when it has already ended."""
    key = selectors.key_for_viewer(user=request.auth, public_id=key_id)
    grants.key_revoke(
        key=key,
        user=request.auth,
        reason=payload.reason.strip() if payload is not None else "",
        via="api",
    )
    key = selectors.key_for_viewer(user=request.auth, public_id=key_id)
    return Status(200, _one_key_out(key, viewer=request.auth))


# --- The owner's side -----------------------------------------------------------------------


@router.post(
    "/cars/{car_id}/service-keys",
    response={201: KeyOut, 400: ErrorOut, 409: ErrorOut},
    summary="Give a technician a key to your car",
)
def service_key_create(
    request: ApiRequest, car_id: UUID, payload: ServiceKeyIn
) -> Status[dict[str, Any]]:
    """A key for a technician (a carshare account with a verified email) for a window of at
    most 14 days, e.g. for cleaning or a repair; the window blocks bookings like your own
    block, and the car is locked at its end. Owner only (anyone else gets 404). 409
    `not_available` when a trip or block takes part of the window; 400 `not_eligible`
    (the same for an unknown address as for an unverified one) or `invalid_window`."""
    car = vehicle_selectors.car_for_owner(user=request.auth, public_id=car_id)
    key = grants.service_key_issue(
        car=car,
        user=request.auth,
        email=payload.email,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        note=payload.note.strip(),
        via="api",
    )
    key = selectors.key_for_viewer(user=request.auth, public_id=key.public_id)
    return Status(201, _one_key_out(key, viewer=request.auth))


@router.get("/cars/{car_id}/keys", response=KeyPage, summary="Every key to your car")
def car_key_list(request: ApiRequest, car_id: UUID, params: Query[PageQuery]) -> dict[str, Any]:
    """Trip, shared and service keys of your car in any status, latest window first, a page at
    a time. Owner only (anyone else gets 404)."""
    car = vehicle_selectors.car_for_owner(user=request.auth, public_id=car_id)
    return apikit.page(
        request,
        selectors.keys_of_car(car_id=car.pk),
        limit=params.limit,
        offset=params.offset,
        out=lambda page: _keys_out(page, viewer=request.auth),
    )


@router.get("/cars/{car_id}/audit", response=AuditPage, summary="Your car's audit log")
def car_audit(request: ApiRequest, car_id: UUID, params: Query[PageQuery]) -> dict[str, Any]:
    """Every attempt to unlock, lock, share or revoke on your car, allowed or denied, newest
    first, a page at a time. Append-only: nothing can change or delete an entry. Owner only
    (anyone else gets 404)."""
    car = vehicle_selectors.car_for_owner(user=request.auth, public_id=car_id)
    zone = times.car_zone(car)
    return apikit.page(
        request,
        selectors.audit_of_car(car_id=car.pk, limit=None),
        limit=params.limit,
        offset=params.offset,
        out=lambda page: [_audit_out(entry, zone=zone) for entry in page],
    )


@router.post(
    "/cars/{car_id}/lock",
    response={202: CommandEnvelope, 409: ErrorOut},
    summary="Lock your car",
    tags=["vehicle commands"],
    # Its name from before keys answered it: clients generated from the document keep working.
    operation_id="vehicles_api_commands_car_lock",
)
def car_lock(request: ApiRequest, car_id: UUID) -> Status[dict[str, Any]]:
    """Ask for your car to be locked. Answers at once with the queued command; follow it with
    GET /commands/{id}. 409 `not_connected` when the car has no connection to its cloud."""
    car = vehicle_selectors.car_for_owner(user=request.auth, public_id=car_id)
    command = use.car_command_request(
        car=car, user=request.auth, action=CommandAction.LOCK, via=AuditVia.OWNER
    )
    return Status(202, {"command": command_out(command, car_public_id=car.public_id)})


@router.post(
    "/cars/{car_id}/unlock",
    response={202: CommandEnvelope, 409: ErrorOut, 429: ErrorOut},
    summary="Unlock your car",
)
def car_unlock(
    request: ApiRequest,
    car_id: UUID,
    payload: OwnerUnlockIn | None = None,
) -> Status[dict[str, Any]]:
    """Ask for your car to be unlocked; follow the command with GET /commands/{id}. During
    someone else's trip or service window only with `override: true` and a `reason`, which
    are recorded in the audit log and shown to that key's holder: without them, 409
    `override_required`. 409 `not_connected` / `needs_reconnecting`; 429 `rate_limited` with
    Retry-After. Owner only (anyone else gets 404)."""
    car = vehicle_selectors.car_for_owner(user=request.auth, public_id=car_id)
    command = use.car_command_request(
        car=car,
        user=request.auth,
        action=CommandAction.UNLOCK,
        override=payload.override if payload is not None else False,
        note=payload.reason if payload is not None else "",
        via="api",
    )
    return Status(202, {"command": command_out(command, car_public_id=car.public_id)})


@router.get(
    "/cars/{car_id}/status",
    response={200: StatusOut, 409: ErrorOut},
    summary="A car's live status (owner or key holder)",
    tags=["vehicle commands"],
    # Its name from before keys answered it: clients generated from the document keep working.
    operation_id="vehicles_api_commands_car_status",
)
def car_status(request: ApiRequest, car_id: UUID) -> Status[dict[str, Any]]:
    """The last known lock state, position, odometer and fuel or battery, with their age, for
    the owner and for whoever holds a key open on the car now (a renter during the trip).
    Asking also requests a fresh reading (at most one per minimum interval): poll again."""
    car = selectors.car_for_status_viewer(user=request.auth, public_id=car_id)
    if connections.connection_live_for_car(car_id=car.pk) is None:
        raise DomainError(
            "not_connected", "This car is not connected to its vehicle cloud.", status=409
        )
    vehicle_commands.vehicle_status_request_refresh(car_id=car.pk)
    status = vehicle_selectors.vehicle_status_for_car(car_id=car.pk)
    now = timezone.now()
    data_age = status.data_age if status else None
    fetched_at = status.fetched_at if status else None
    requested = status.refresh_requested_at if status else None
    return Status(
        200,
        {
            "car_id": car.public_id,
            "is_locked": status.is_locked if status else None,
            "doors_open": status.doors_open if status else None,
            "latitude": status.latitude if status else None,
            "longitude": status.longitude if status else None,
            "odometer_km": status.odometer_km if status else None,
            "fuel_percent": status.fuel_percent if status else None,
            "battery_percent": status.battery_percent if status else None,
            "range_km": status.range_km if status else None,
            "data_age": data_age,
            "data_age_seconds": max(0, int((now - data_age).total_seconds())) if data_age else None,
            "fetched_at": fetched_at,
            "refreshing": requested is not None and (fetched_at is None or fetched_at < requested),
            "last_error": status.last_error if status else "",
        },
    )
