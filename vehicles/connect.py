"""Connecting a car to the vehicle cloud: the steps of Smartcar Connect that are not HTTP handling.

The owner presses "Connect this car"; we remember a random `state` in their session, bound to
that car, and send them to Connect. Connect sends them back to /connect/callback/ with the same
state and a code (or an `error`). The state is single use and expires, so a callback that was
not started here, or is played again, stores nothing. The code is exchanged for tokens, the
granted vehicles are read, and one must be the listed car (make, model, year, VIN when both are
known) before connections.connection_create stores the grant.

connection_complete() talks to the vehicle cloud: it runs in the request (the owner waits for
Connect anyway) but never inside a transaction; connection_create opens its own, after the I/O.
"""

from __future__ import annotations

import datetime
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from carshare import db
from vehicles import crypto, tasks_connections
from vehicles.cloud import configured, connections, provider
from vehicles.makes import MAKE_NAMES
from vehicles.models import VEHICLE_CONNECTED_ONCE, Car, ConnectionStatus, VehicleConnection

SESSION_KEY = "vehicle_connect_states"
STATE_TTL_SECONDS = 15 * 60  # Connect's code lives 10 minutes; an owner may dawdle a little
MAX_PENDING_STATES = 5  # a few tabs at once, not an ever-growing session
# Connect must grant these, or carshare could not open and close the car for a trip.
NEEDED_PERMISSIONS = ("control_security", "read_security")


# What each permission lets carshare do, in the owner's words.
PERMISSION_LABELS = {
    "control_security": _lazy("Lock and unlock the car"),
    "read_security": _lazy("See whether it is locked"),
    "read_vehicle_info": _lazy("Know its make, model and year"),
    "read_vin": _lazy("Read its VIN"),
    "read_location": _lazy("See where it is"),
    "read_odometer": _lazy("Read the odometer"),
    "read_fuel": _lazy("Read the fuel level"),
    "read_battery": _lazy("Read the battery level"),
}


def permission_labels(permissions: list[str]) -> list[str]:
    return [str(PERMISSION_LABELS.get(p, p.replace("_", " "))) for p in permissions]


def connection_vehicle_label(connection: VehicleConnection) -> str:
    """The vehicle as the cloud reported it: "Volkswagen Golf 2021"."""
    parts = [
        make_display(connection.reported_make),
        connection.reported_model,
        str(connection.reported_year or ""),
    ]
    return " ".join(part for part in parts if part) or connection.vehicle_id


# --- state: bound to the session and the car, single use -----------------------------------


def connect_state_issue(session: Any, *, car: Car) -> str:
    """A fresh random state for this car, remembered in the session for STATE_TTL_SECONDS."""
    now = time.time()
    pending: dict[str, dict[str, Any]] = {
        state: entry
        for state, entry in (session.get(SESSION_KEY) or {}).items()
        if entry.get("expires", 0) > now
    }
    state = secrets.token_urlsafe(24)
    pending[state] = {"car": str(car.public_id), "expires": now + STATE_TTL_SECONDS}
    # Keep the newest few: each press of the button adds one.
    newest = sorted(pending.items(), key=lambda item: item[1]["expires"])[-MAX_PENDING_STATES:]
    session[SESSION_KEY] = dict(newest)
    return state


def connect_state_consume(session: Any, *, state: str) -> str | None:
    """The car public_id the state was issued for, or None when it is unknown, expired or
    already used. Consuming removes it, so a replayed callback finds nothing."""
    pending: dict[str, dict[str, Any]] = dict(session.get(SESSION_KEY) or {})
    entry = pending.pop(state, None) if state else None
    session[SESSION_KEY] = pending
    if entry is None or entry.get("expires", 0) <= time.time():
        return None
    return str(entry["car"])


# --- Connect's error answers ---------------------------------------------------------------


def connect_error_message(params: Mapping[str, str]) -> str:
    """What to tell the owner when Connect came back with `error=...` instead of a code."""
    error = params.get("error", "")
    if error == "access_denied":
        return _(
            "You declined access in Connect, so your car is not connected. Connect it again "
            "whenever you are ready."
        )
    if error == "vehicle_incompatible":
        described = " ".join(
            part
            for part in (
                make_display(params.get("make", "")),
                params.get("model", ""),
                params.get("year", ""),
            )
            if part
        )
        vin = params.get("vin", "")
        which = described or _("The car you chose")
        if vin:
            which = _("%(car)s (VIN %(vin)s)") % {"car": which, "vin": vin}
        return _(
            "%(car)s cannot be connected: it does not support what carshare needs, remote "
            "locking and unlocking. Nothing was connected."
        ) % {"car": which}
    if error == "invalid_subscription":
        return _(
            "Your car's connected-services subscription is not active. Activate it with your "
            "carmaker (usually in its app), then connect again."
        )
    if error == "no_vehicles":
        return _(
            "Connect found no car in that account. Sign in with the account your car is "
            "registered to in your carmaker's app, then connect again."
        )
    if error == "configuration_error":
        return _(
            "Connect ran into a problem and sent you back. Please try again; if it keeps "
            "happening, contact us."
        )
    if error == "server_error":
        return _("Connect had a temporary problem. Please try again in a few minutes.")
    return _("Connecting did not work (%(error)s). Please try again.") % {
        "error": error or _("no answer")
    }


# --- matching the granted vehicle to the listing -------------------------------------------


def _make_key(make: str) -> str:
    """MERCEDES-BENZ, MERCEDES_BENZ and Mercedes Benz are one make."""
    return re.sub(r"[^A-Z0-9]", "", make.upper())


_MAKE_NAMES_BY_KEY = {_make_key(code): name for code, name in MAKE_NAMES.items()}


def make_display(make: str) -> str:
    return _MAKE_NAMES_BY_KEY.get(_make_key(make), make.title() if make.isupper() else make)


@dataclass(frozen=True)
class GrantedVehicle:
    vehicle_id: str
    attributes: provider.Attributes
    vin: str  # "" when the owner did not share it
    permissions: list[str]

    @property
    def label(self) -> str:
        a = self.attributes
        return f"{make_display(a.make)} {a.model} {a.year}".strip()


def listing_differences(car: Car, vehicle: GrantedVehicle) -> list[str]:
    """How the vehicle differs from the listing, in words; empty when it is the listed car."""
    a = vehicle.attributes
    differences = []
    if _make_key(a.make) != _make_key(car.make):
        differences.append(
            _("the make is %(theirs)s, the listing says %(ours)s")
            % {"theirs": make_display(a.make), "ours": car.make_name}
        )
    theirs, ours = a.model.strip().casefold(), car.model.strip().casefold()
    # Carmakers and owners name models differently ("Golf" vs "Golf GTE"): either may contain
    # the other.
    if theirs and ours and theirs not in ours and ours not in theirs:
        differences.append(
            _("the model is %(theirs)s, the listing says %(ours)s")
            % {"theirs": a.model, "ours": car.model}
        )
    if a.year != car.year:
        differences.append(
            _("the year is %(theirs)s, the listing says %(ours)s")
            % {"theirs": a.year, "ours": car.year}
        )
    if car.vin and vehicle.vin and vehicle.vin.upper() != car.vin.upper():
        differences.append(
            _("the VIN is %(theirs)s, the listing says %(ours)s")
            % {"theirs": vehicle.vin, "ours": car.vin}
        )
    return differences


def _mismatch_message(car: Car, rejected: list[tuple[GrantedVehicle, list[str]]]) -> str:
    if len(rejected) == 1:
        vehicle, differences = rejected[0]
        return _(
            "The car you shared in Connect (%(vehicle)s) is not this listing: %(differences)s. "
            "Nothing was connected. Connect again and choose this car, or correct the listing."
        ) % {"vehicle": vehicle.label, "differences": "; ".join(differences)}
    details = "; ".join(
        f"{vehicle.label}: {', '.join(differences)}" for vehicle, differences in rejected
    )
    return _(
        "None of the cars you shared in Connect is this listing (%(details)s). Nothing was "
        "connected."
    ) % {"details": details}


def _read_vehicle(
    cloud: provider.VehicleCloud, *, access_token: str, vehicle_id: str
) -> GrantedVehicle:
    attributes = cloud.attributes(access_token=access_token, vehicle_id=vehicle_id)
    permissions = cloud.permissions(access_token=access_token, vehicle_id=vehicle_id)
    vin = ""
    if "read_vin" in permissions:  # the owner may untick it; matching then skips the VIN
        vin = cloud.vin(access_token=access_token, vehicle_id=vehicle_id)
    return GrantedVehicle(vehicle_id, attributes, vin, list(permissions))


def connection_complete(*, car: Car, code: str) -> VehicleConnection:
    """Exchange Connect's code and connect `car` to the granted vehicle that is this listing.

    Raises connections.ConnectError, whose text is meant for the owner, and stores nothing
    unless a granted vehicle matches the listing. Calls the vehicle cloud: no transaction open.
    """
    cloud = configured.get_provider()
    try:
        tokens = cloud.exchange_code(code=code)
        vehicle_ids = cloud.vehicle_ids(access_token=tokens.access_token)
        granted = [
            _read_vehicle(cloud, access_token=tokens.access_token, vehicle_id=vehicle_id)
            for vehicle_id in vehicle_ids
        ]
    except provider.OAuthError as error:
        # A code is single use and lives 10 minutes: a reload of the callback ends here.
        raise connections.ConnectError(
            _("Connect's answer could not be used (%(reason)s). Please connect again.")
            % {"reason": error.message}
        ) from error
    except provider.VehicleCloudError as error:
        raise connections.ConnectError(
            _("The vehicle cloud did not answer as expected (%(reason)s). Please try again.")
            % {"reason": error.user_message or error.message}
        ) from error
    if not granted:
        raise connections.ConnectError(
            _("You did not share any car in Connect, so nothing was connected.")
        )
    rejected = []
    for vehicle in granted:
        differences = listing_differences(car, vehicle)
        if differences:
            rejected.append((vehicle, differences))
            continue
        missing = [p for p in NEEDED_PERMISSIONS if p not in vehicle.permissions]
        if missing:
            raise connections.ConnectError(
                _(
                    "carshare needs permission to lock, unlock and read the locks of your car, "
                    "and Connect did not grant it. Nothing was connected."
                )
            )
        return connection_create(
            car=car,
            tokens=tokens,
            vehicle_id=vehicle.vehicle_id,
            scopes=vehicle.permissions,
            attributes=vehicle.attributes,
            vin=vehicle.vin,
            mode=cloud.mode,
        )
    raise connections.ConnectError(_mismatch_message(car, rejected))


# --- storing the grant, and disconnecting -------------------------------------------------------------------


def _retire(previous: VehicleConnection, *, vehicle_id: str, now: datetime.datetime) -> None:
    """Disconnect the car's earlier connection inside connection_create's transaction."""
    fields: dict[str, object] = {"status": ConnectionStatus.DISCONNECTED, "disconnected_at": now}
    # A reconnect of the same vehicle: DELETE /application would take the car away from the
    # new grant too (it acts on every Connect session), so only forget the old tokens.
    same_vehicle = previous.vehicle_id == vehicle_id and previous.provider == "smartcar"
    if same_vehicle:
        fields.update(connections.cleared_tokens())
    VehicleConnection.objects.filter(pk=previous.pk).update(**fields)
    if not same_vehicle:
        tasks_connections.revoke_vehicle_access.delay_on_commit(connection_id=previous.pk)


def connection_create(
    *,
    car: Car,
    tokens: provider.Tokens,
    vehicle_id: str,
    scopes: list[str],
    attributes: provider.Attributes | None,
    vin: str,
    mode: str,
) -> VehicleConnection:
    """Store a new live connection for the car (tokens encrypted), retiring its previous one."""
    now = timezone.now()
    try:
        with transaction.atomic(durable=True):
            # The car row lock serialises two callbacks for one car (a double-submitted Connect).
            Car.objects.select_for_update().filter(pk=car.pk).first()
            previous = connections.connection_live_for_car(car_id=car.pk)
            if previous is not None:
                _retire(previous, vehicle_id=vehicle_id, now=now)
            connection = VehicleConnection.objects.create(
                car=car,
                provider="smartcar",
                mode=mode,
                vehicle_id=vehicle_id,
                scopes=list(scopes),
                access_token_encrypted=crypto.encrypt_token(tokens.access_token),
                refresh_token_encrypted=crypto.encrypt_token(tokens.refresh_token),
                access_expires_at=tokens.access_expires_at,
                refresh_expires_at=tokens.refresh_expires_at,
                status=ConnectionStatus.HEALTHY,
                reported_make=attributes.make if attributes else "",
                reported_model=attributes.model[:64] if attributes else "",
                reported_year=attributes.year if attributes else None,
                reported_vin=vin or "",
            )
    except IntegrityError as error:
        # The vehicle already serves another listing.
        if db.violates(error, VEHICLE_CONNECTED_ONCE):
            raise connections.ConnectError(
                _("This vehicle is already connected to another car on carshare.")
            ) from error
        raise
    return connection


@transaction.atomic(durable=True)
def connection_disconnect(*, connection: VehicleConnection) -> None:
    """Mark disconnected now; a task revokes our access at the vehicle cloud after commit."""
    now = timezone.now()
    updated = (
        VehicleConnection.objects.filter(pk=connection.pk)
        .exclude(status=ConnectionStatus.DISCONNECTED)
        .update(status=ConnectionStatus.DISCONNECTED, disconnected_at=now)
    )
    if updated:
        # No I/O in the request: DELETE /application happens in a worker, with retries.
        tasks_connections.revoke_vehicle_access.delay_on_commit(connection_id=connection.pk)
        connection.status = ConnectionStatus.DISCONNECTED
        connection.disconnected_at = now
