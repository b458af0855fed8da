"""The vehicle-cloud boundary: one interface, typed results, typed errors.

Everything else in carshare talks to cars through `vehicles.cloud.configured.get_provider()`;
the Smartcar implementation (vehicles/cloud/smartcar.py) speaks Smartcar API v2.0 to real Smartcar or to the local simulator,
depending on settings. Errors keep Smartcar's type, code, status, retry-after and the message it
suggests showing to people, so callers decide retry policy from facts, not from strings.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

# The scopes carshare asks for at Connect: control and read the locks (required), and read what
# the owner's car page and the trip pages show.
CONNECT_SCOPES = [
    "required:control_security",
    "required:read_security",
    "read_vehicle_info",
    "read_vin",
    "read_location",
    "read_odometer",
    "read_fuel",
    "read_battery",
]


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime.datetime
    refresh_expires_at: datetime.datetime


@dataclass(frozen=True)
class Meta:
    """Smartcar's response headers: SC-Request-Id, SC-Data-Age, SC-Fetched-At."""

    request_id: str = ""
    data_age: datetime.datetime | None = None
    fetched_at: datetime.datetime | None = None


@dataclass(frozen=True)
class Attributes:
    vehicle_id: str
    make: str
    model: str
    year: int
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class LockStatus:
    is_locked: bool
    doors_open: bool | None  # None when the car does not report its doors
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class Odometer:
    distance_km: float
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class Level:
    """Fuel or battery: percent remaining (0 to 100) and range in km when known."""

    percent: float | None
    range_km: float | None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class CommandAck:
    """The cloud accepted a LOCK/UNLOCK: delivered to the car, not yet confirmed by it."""

    message: str
    meta: Meta = field(default_factory=Meta)


class VehicleCloudError(Exception):
    """An error answer (or no answer) from the vehicle cloud.

    `type`/`code` are Smartcar's (e.g. VEHICLE_STATE / DOOR_OPEN); `user_message` is Smartcar's
    suggestedUserMessage, safe to show to the person who pressed the button.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str = "",
        code: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        user_message: str = "",
        request_id: str = "",
        resolution: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.user_message = user_message
        self.request_id = request_id
        self.resolution = resolution

    def __str__(self) -> str:
        kind = f"{self.type}:{self.code}" if self.code else self.type
        return f"{kind} - {self.message}" if kind else self.message


class RateLimited(VehicleCloudError):
    """429 RATE_LIMIT: wait retry_after seconds (or a default) and try again."""


class TransientError(VehicleCloudError):
    """UPSTREAM (502), SERVER (500), timeouts and dropped connections: may work next time."""


class VehicleStateError(VehicleCloudError):
    """409 VEHICLE_STATE (DOOR_OPEN, ASLEEP, UNREACHABLE, ...): the car itself refused."""


class AuthenticationFailed(VehicleCloudError):
    """401 AUTHENTICATION: the access token is bad or expired (refresh, then reconnect)."""


class PermissionDenied(VehicleCloudError):
    """403 PERMISSION: the owner did not grant the scope this call needs."""


class NotCapable(VehicleCloudError):
    """501 COMPATIBILITY: the car or make cannot do this."""


class AccountProblem(VehicleCloudError):
    """400 CONNECTED_SERVICES_ACCOUNT (e.g. VIRTUAL_KEY_REQUIRED): the owner must act."""


class InvalidRequest(VehicleCloudError):
    """400 VALIDATION, 404 RESOURCE_NOT_FOUND, BILLING and anything unexpected: our bug or
    the vehicle is gone; never retried."""


class OAuthError(VehicleCloudError):
    """The token endpoint refused a code or refresh token (OAuth `error`/`error_description`)."""


class VehicleCloud(Protocol):
    """What carshare needs from a vehicle cloud. Every call may raise VehicleCloudError."""

    mode: str

    def authorize_url(
        self, *, state: str, make: str | None = None, vin: str | None = None, force: bool = False
    ) -> str: ...

    def exchange_code(self, *, code: str) -> Tokens: ...

    def refresh(self, *, refresh_token: str) -> Tokens: ...

    def vehicle_ids(self, *, access_token: str) -> list[str]: ...

    def attributes(self, *, access_token: str, vehicle_id: str) -> Attributes: ...

    def vin(self, *, access_token: str, vehicle_id: str) -> str: ...

    def permissions(self, *, access_token: str, vehicle_id: str) -> list[str]: ...

    def lock(self, *, access_token: str, vehicle_id: str) -> CommandAck: ...

    def unlock(self, *, access_token: str, vehicle_id: str) -> CommandAck: ...

    def lock_status(self, *, access_token: str, vehicle_id: str) -> LockStatus: ...

    def location(self, *, access_token: str, vehicle_id: str) -> Location: ...

    def odometer(self, *, access_token: str, vehicle_id: str) -> Odometer: ...

    def fuel(self, *, access_token: str, vehicle_id: str) -> Level: ...

    def battery(self, *, access_token: str, vehicle_id: str) -> Level: ...

    def disconnect(self, *, access_token: str, vehicle_id: str) -> None: ...
