"""Smartcar v2.0 error catalogue (reference §3) and the envelope every error response uses."""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://smartcar.com/docs/errors/api-errors"

STATUS_BY_TYPE: dict[str, int] = {
    "AUTHENTICATION": 401,
    "BILLING": 430,
    "COMPATIBILITY": 501,
    "CONNECTED_SERVICES_ACCOUNT": 400,
    "PERMISSION": 403,
    "RATE_LIMIT": 429,
    "RESOURCE_NOT_FOUND": 404,
    "SERVER": 500,
    "UPSTREAM": 502,
    "VALIDATION": 400,
    "VEHICLE_STATE": 409,
}

CODES_BY_TYPE: dict[str, set[str | None]] = {
    "AUTHENTICATION": {None},
    "BILLING": {"INVALID_PLAN", "VEHICLE_LIMIT", "VEHICLE_REQUEST_LIMIT", "ACCOUNT_SUSPENDED"},
    "COMPATIBILITY": {
        "MAKE_NOT_COMPATIBLE",
        "SMARTCAR_NOT_CAPABLE",
        "VEHICLE_NOT_CAPABLE",
        "PLATFORM_NOT_CAPABLE",
    },
    "CONNECTED_SERVICES_ACCOUNT": {
        "ACCOUNT_ISSUE",
        "AUTHENTICATION_FAILED",
        "NO_VEHICLES",
        "SUBSCRIPTION",
        "VEHICLE_MISSING",
        "PERMISSION",
        "VIRTUAL_KEY_REQUIRED",
    },
    "PERMISSION": {None},
    "RATE_LIMIT": {"SMARTCAR_API", "VEHICLE"},
    "RESOURCE_NOT_FOUND": {"PATH", "VERSION"},
    "SERVER": {"INTERNAL", "MULTIPLE_RECORDS_FOUND", "RECORD_NOT_FOUND"},
    "UPSTREAM": {"INVALID_DATA", "KNOWN_ISSUE", "NO_RESPONSE", "RATE_LIMIT", "UNKNOWN_ISSUE"},
    "VALIDATION": {None, "PARAMETER"},
    "VEHICLE_STATE": {
        "ASLEEP",
        "CHARGING_IN_PROGRESS",
        "CHARGING_PLUG_CONNECTED",
        "CHARGING_PLUG_NOT_CONNECTED",
        "DOOR_OPEN",
        "FULLY_CHARGED",
        "NOT_CHARGING",
        "CHARGE_FAULT",
        "HOOD_OPEN",
        "IGNITION_ON",
        "IN_MOTION",
        "REMOTE_ACCESS_DISABLED",
        "TRUNK_OPEN",
        "UNKNOWN",
        "UNREACHABLE",
        "VEHICLE_OFFLINE_FOR_SERVICE",
        "LOW_BATTERY",
    },
}

# (description, suggestedUserMessage, resolution type). The reference's exact strings where it has
# them (§3.3); the rest are written in the same voice.
_VEHICLE_STATE: dict[str, tuple[str, str, str | None]] = {
    "ASLEEP": (
        "The vehicle is in a sleep state and temporarily unable to perform your request.",
        "Your vehicle is in a sleep state. This request was not sent to preserve battery life.",
        None,
    ),
    "DOOR_OPEN": (
        "The vehicle could not perform your request because one or more of its doors are open.",
        "Your vehicle was unable to lock. Please ensure that all doors and the trunk are fully closed.",
        None,
    ),
    "HOOD_OPEN": (
        "The vehicle is unable to perform your request because its hood is open.",
        "Your vehicle was unable to lock. Please ensure that the vehicle's hood is fully closed.",
        None,
    ),
    "TRUNK_OPEN": (
        "The vehicle is unable to perform your request because its trunk is open.",
        "Your vehicle was unable to open the trunk because it is already open.",
        None,
    ),
    "IGNITION_ON": (
        "The vehicle was unable to perform your request because its engine is running.",
        "Your vehicle is currently running.",
        None,
    ),
    "IN_MOTION": (
        "The vehicle is currently in motion and unable to perform your request.",
        "Your vehicle is unable to perform the request while in motion.",
        None,
    ),
    "REMOTE_ACCESS_DISABLED": (
        "The vehicle is unable to perform your request because the user has disabled remote access for connected services.",
        "Your vehicle is unable to perform the request as remote access is disabled or unavailable.",
        None,
    ),
    "UNREACHABLE": (
        "The vehicle was unable to perform your request because it is currently unreachable.",
        "Your vehicle is currently unreachable. Ensure the vehicle has adequate mobile coverage.",
        None,
    ),
    "UNKNOWN": (
        "The vehicle was unable to perform your request due to an unknown issue.",
        "Your vehicle is temporarily unable to connect due to an unknown issue. Please be patient while we're working to resolve this issue.",
        "RETRY_LATER",
    ),
    "VEHICLE_OFFLINE_FOR_SERVICE": (
        "The vehicle was unable to perform your request because it is currently in service mode.",
        "Your vehicle is in service mode and temporarily unable to perform this task.",
        None,
    ),
    "LOW_BATTERY": (
        "The vehicle was unable to perform your request because the 12v or high voltage battery is too low.",
        "Your vehicle battery is too low to perform this task.",
        "RETRY_LATER",
    ),
    "CHARGING_IN_PROGRESS": (
        "The vehicle is currently charging and unable to perform your request.",
        "Your vehicle is already charging.",
        None,
    ),
    "CHARGING_PLUG_NOT_CONNECTED": (
        "The vehicle is not connected to an EV charger and unable to perform your request.",
        "Your vehicle is not plugged in.",
        None,
    ),
    "FULLY_CHARGED": (
        "The vehicle is unable to perform your request because its EV battery is fully charged.",
        "Your vehicle is already fully charged.",
        None,
    ),
    "NOT_CHARGING": (
        "The vehicle is unable to perform your request because it is not currently charging.",
        "Please ensure that you have plugged an EV charger into your car's charge port and the vehicle is charging.",
        None,
    ),
}

_OTHER: dict[tuple[str, str | None], tuple[str, str | None, str | None]] = {
    ("AUTHENTICATION", None): (
        "The authorization header is missing or malformed, or it contains invalid or expired authentication credentials. Please check for missing parameters, spelling and casing mistakes, and other syntax issues.",
        None,
        "REAUTHENTICATE",
    ),
    ("PERMISSION", None): (
        "Your application has insufficient permissions to access the requested resource. Please prompt the user to re-authenticate using Smartcar Connect.",
        None,
        "REAUTHENTICATE",
    ),
    ("VALIDATION", None): (
        "Request invalid or malformed. Please check for missing parameters, spelling and casing mistakes, and other syntax issues.",
        None,
        None,
    ),
    ("VALIDATION", "PARAMETER"): (
        "Request invalid or malformed. Please check for missing parameters, spelling and casing mistakes, and other syntax issues.",
        None,
        None,
    ),
    ("RATE_LIMIT", "SMARTCAR_API"): (
        "Your application has exceeded its rate limit. Please retry your request in a few minutes.",
        None,
        "RETRY_LATER",
    ),
    ("RATE_LIMIT", "VEHICLE"): (
        "You have reached the throttling rate limit for this vehicle. Please see the retry-after header (seconds) for when to retry the request.",
        None,
        "RETRY_LATER",
    ),
    ("SERVER", "INTERNAL"): (
        "An internal Smartcar error has occurred. Our team has been notified and is working to resolve this issue.",
        None,
        "RETRY_LATER",
    ),
    ("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"): (
        "Action needed in the user's connected services account. Please prompt the user to log into their connected services account and complete any outstanding tasks.",
        "Action is required in your connected services account. Please log in and complete any outstanding tasks.",
        None,
    ),
    ("CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED"): (
        "The vehicle owner needs to add a virtual key to the vehicle before your application can send commands to it.",
        "Please add the virtual key to your vehicle to allow this application to send commands.",
        "REAUTHENTICATE",
    ),
    ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"): (
        "The vehicle is incapable of performing your request.",
        "Your car is unable to perform this request.",
        None,
    ),
    ("COMPATIBILITY", "MAKE_NOT_COMPATIBLE"): (
        "Smartcar is not yet compatible with this vehicle's make in the country you specified.",
        "Your car is not compatible with this application.",
        None,
    ),
    ("COMPATIBILITY", "SMARTCAR_NOT_CAPABLE"): (
        "Smartcar does not yet support this feature for this vehicle.",
        "Your car is unable to perform this request.",
        None,
    ),
    ("RESOURCE_NOT_FOUND", "PATH"): (
        "The requested resource does not exist. Please check the URL and try again.",
        None,
        None,
    ),
    ("RESOURCE_NOT_FOUND", "VERSION"): (
        "The requested version of the API does not exist. Please check the version in the URL and try again.",
        None,
        None,
    ),
    ("UPSTREAM", "NO_RESPONSE"): (
        "The vehicle or the manufacturer did not respond to the request. This can be due to poor cellular reception.",
        "Your vehicle is temporarily unable to connect. Please try again later.",
        "RETRY_LATER",
    ),
}

_GENERIC_BY_TYPE: dict[str, tuple[str, str | None, str | None]] = {
    "BILLING": ("Your application's plan does not allow this request.", None, None),
    "COMPATIBILITY": ("The vehicle is incapable of performing your request.", None, None),
    "CONNECTED_SERVICES_ACCOUNT": (
        "There is a problem with the vehicle owner's connected services account.",
        "Please log in to your connected services account and check its status.",
        None,
    ),
    "SERVER": (
        "An internal Smartcar error has occurred. Our team has been notified and is working to resolve this issue.",
        None,
        "RETRY_LATER",
    ),
    "UPSTREAM": (
        "The vehicle manufacturer returned an error or invalid data. Please retry your request later.",
        "Your vehicle is temporarily unable to connect. Please try again later.",
        "RETRY_LATER",
    ),
}


def is_known(error_type: str, code: str | None) -> bool:
    return error_type in CODES_BY_TYPE and code in CODES_BY_TYPE[error_type]


def _anchor(error_type: str, code: str | None) -> str:
    return "null" if code is None else code.lower().replace("_", "-")


def _page(error_type: str) -> str:
    return error_type.lower().replace("_", "-") + "-errors"


def error_body(
    error_type: str,
    code: str | None,
    *,
    request_id: str,
    status: int | None = None,
    description: str | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The v2 envelope of reference §3.1, with the catalogue's exact strings where known."""
    if error_type == "VEHICLE_STATE" and code in _VEHICLE_STATE:
        desc, suggested, resolution = _VEHICLE_STATE[code]
    elif (error_type, code) in _OTHER:
        desc, suggested, resolution = _OTHER[(error_type, code)]
    else:
        desc, suggested, resolution = _GENERIC_BY_TYPE.get(
            error_type, ("The request could not be completed.", None, None)
        )
    body: dict[str, Any] = {
        "type": error_type,
        "code": code,
        "description": description or desc,
        "docURL": f"{DOC_BASE}/{_page(error_type)}#{_anchor(error_type, code)}",
        "statusCode": status or STATUS_BY_TYPE.get(error_type, 500),
        "requestId": request_id,
        "resolution": {"type": resolution},
    }
    if suggested:
        body["suggestedUserMessage"] = suggested
    if detail is not None:
        body["detail"] = detail
    return body


class ApiError(Exception):
    """Raised anywhere in a handler; the middleware turns it into the v2 error envelope."""

    def __init__(
        self,
        error_type: str,
        code: str | None = None,
        *,
        status: int | None = None,
        description: str | None = None,
        detail: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{error_type}:{code}")
        self.error_type = error_type
        self.code = code
        self.status = status or STATUS_BY_TYPE.get(error_type, 500)
        self.description = description
        self.detail = detail
        self.retry_after = retry_after

    def body(self, request_id: str) -> dict[str, Any]:
        return error_body(
            self.error_type,
            self.code,
            request_id=request_id,
            status=self.status,
            description=self.description,
            detail=self.detail,
        )


def validation(message: str, field: str | None = None) -> ApiError:
    """A 400 VALIDATION error whose detail says what was wrong."""
    item: dict[str, Any] = {"message": message}
    if field is not None:
        item["field"] = field
    return ApiError("VALIDATION", "PARAMETER" if field else None, detail=[item])
