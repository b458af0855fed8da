"""The vehicle-commands part of the JSON API: following a command, and the schemas a command
and a car's live status travel in.

Nothing here talks to a car. Asking for a command (POST /cars/{id}/lock, /unlock, a key's
/lock and /unlock) and reading live status (GET /cars/{id}/status, for the owner or a key
holder) are in keys.api: keys decides who may ask, and audits every attempt. Auth is the API's
default X-Session-Token; strangers get 404 for cars and commands alike.
"""

from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

from ninja import Field, Router, Schema

from carshare.apikit import ApiRequest
from vehicles import selectors
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


@router.get("/commands/{command_id}", response=CommandOut, summary="One vehicle command")
def command_detail(request: ApiRequest, command_id: UUID) -> dict[str, Any]:
    """A command on your car, or one you asked for, with its progress and any error."""
    command = selectors.command_for_owner(user=request.auth, public_id=command_id)
    return command_out(command, car_public_id=command.car.public_id)
