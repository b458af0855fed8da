"""The vehicle-commands part of the JSON API: lock a car, follow a command, read live status.

Nothing here talks to a car: POST .../lock records a command and answers 202 at once (a worker
sends it; the client polls GET /commands/{id}), and GET .../status answers from the last known
status while asking, at most once per VEHICLE_STATUS_MIN_INTERVAL, for a fresh read. Auth is the
API's default X-Session-Token; strangers get 404 for cars and commands alike.
"""

from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

from django.utils import timezone
from ninja import Field, Router, Schema, Status

from carshare.apikit import ApiRequest
from carshare.errors import DomainError
from vehicles import commands, connections, selectors
from vehicles.models import (
    CommandAction,
    CommandReason,
    CommandStatus,
    VehicleCommand,
)

router = Router(tags=["vehicle commands"])


class CommandErrorOut(Schema):
    type: str = Field(description="The vehicle cloud's error type, e.g. VEHICLE_STATE.")
    code: str | None = Field(description="Its code, e.g. DOOR_OPEN; null when it has none.")
    message: str = Field(description="What to show the person who asked, in English.")


class CommandOut(Schema):
    id: UUID = Field(description="The command's public id.")
    car_id: UUID = Field(description="The car's public id.")
    action: str = Field(json_schema_extra={"enum": list(CommandAction.values)})
    reason: str = Field(json_schema_extra={"enum": list(CommandReason.values)})
    status: str = Field(
        description="queued → sent → succeeded | failed; a queued command may also end "
        "expired (not sent within 60 s of a person's request) or superseded (a newer command "
        "for the car).",
        json_schema_extra={"enum": list(CommandStatus.values)},
    )
    is_pending: bool = Field(description="True while queued or sent: keep polling.")
    attempts: int
    error: CommandErrorOut | None = Field(description="Why it failed or last had to retry.")
    requested_at: datetime.datetime
    sent_at: datetime.datetime | None
    answered_at: datetime.datetime | None = Field(description="When the vehicle cloud accepted.")
    confirmed_at: datetime.datetime | None = Field(
        description="When the car reported the asked-for lock state."
    )


class CommandEnvelope(Schema):
    command: CommandOut


class ErrorBody(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorBody


class StatusOut(Schema):
    car_id: UUID
    is_locked: bool | None
    doors_open: bool | None
    latitude: float | None
    longitude: float | None
    odometer_km: float | None
    fuel_percent: float | None = Field(description="0 to 100.")
    battery_percent: float | None = Field(description="0 to 100.")
    range_km: float | None
    data_age: datetime.datetime | None = Field(description="When the car recorded this data.")
    data_age_seconds: int | None = Field(description="How old the data is now, in seconds.")
    fetched_at: datetime.datetime | None = Field(description="When carshare last read the car.")
    refreshing: bool = Field(description="A newer reading has been asked for.")
    last_error: str = Field(description="Why the last reading was incomplete; empty if it was not.")


def command_out(command: VehicleCommand, *, car_public_id: UUID) -> dict[str, Any]:
    error = None
    if command.error_type or command.error_message:
        error = {
            "type": command.error_type,
            "code": command.error_code or None,
            "message": command.error_message,
        }
    return {
        "id": command.public_id,
        "car_id": car_public_id,
        "action": command.action,
        "reason": command.reason,
        "status": command.status,
        "is_pending": command.is_pending,
        "attempts": command.attempts,
        "error": error,
        "requested_at": command.requested_at,
        "sent_at": command.sent_at,
        "answered_at": command.answered_at,
        "confirmed_at": command.confirmed_at,
    }


@router.post(
    "/cars/{car_id}/lock",
    response={202: CommandEnvelope, 409: ErrorOut},
    summary="Lock your car",
)
def car_lock(request: ApiRequest, car_id: UUID) -> Status[dict[str, Any]]:
    """Ask for your car to be locked. Answers at once with the queued command; follow it with
    GET /commands/{id}. 409 `not_connected` when the car has no connection to its cloud."""
    car = selectors.car_for_owner(user=request.auth, public_id=car_id)
    # A CommandRefused (not_connected, ...) is the API's 409 envelope (carshare/api.py).
    command = commands.vehicle_command_request(
        car=car, action=CommandAction.LOCK, reason=CommandReason.OWNER, actor=request.auth
    )
    return Status(202, {"command": command_out(command, car_public_id=car.public_id)})


@router.get("/commands/{command_id}", response=CommandOut, summary="One vehicle command")
def command_detail(request: ApiRequest, command_id: UUID) -> dict[str, Any]:
    """A command on your car, or one you asked for, with its progress and any error."""
    command = commands.command_for_owner(user=request.auth, public_id=command_id)
    return command_out(command, car_public_id=command.car.public_id)


@router.get(
    "/cars/{car_id}/status",
    response={200: StatusOut, 409: ErrorOut},
    summary="A car's live status (owner or key holder)",
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
    commands.vehicle_status_request_refresh(car_id=car.pk)
    status = commands.vehicle_status_for_car(car_id=car.pk)
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
