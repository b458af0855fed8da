"""Vehicle state: creation, validated updates, motion, and the wire shapes of the v2.0 reads."""

from __future__ import annotations

import math
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from simulator import catalog
from simulator.errors import ApiError, validation

KM_PER_MILE = 1.609344
LITRES_PER_US_GALLON = 3.785411784
PSI_PER_KPA = 0.1450377377
ICE_L_PER_100KM = 7.0
BEV_KWH_PER_100KM = 17.0
CHARGER_KW = 11.0  # a wallbox
VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
DOOR_TYPES = ("frontLeft", "frontRight", "backLeft", "backRight")


def iso(ts: float) -> str:
    """ISO-8601 with milliseconds and Z, as Smartcar writes SC-Data-Age and SC-Fetched-At."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


# name -> (kind, low, high). kinds: bool, num, int, str, opt_int, opt_num, enum:<a|b>
FIELDS: dict[str, tuple[str, float | None, float | None]] = {
    "make": ("str", None, None),
    "model": ("str", None, None),
    "year": ("int", 1900, 2100),
    "owner_email": ("email", None, None),
    "powertrain": ("enum:ICE|BEV|PHEV|HEV", None, None),
    "latitude": ("num", -90, 90),
    "longitude": ("num", -180, 180),
    "heading_deg": ("num", 0, 360),
    "speed_kmh": ("num", 0, 300),
    "odometer_km": ("num", 0, 5_000_000),
    "fuel_percent": ("num", 0, 100),
    "fuel_capacity_l": ("num", 1, 500),
    "battery_percent": ("num", 0, 100),
    "battery_capacity_kwh": ("num", 1, 300),
    "is_locked": ("bool", None, None),
    "doors_open": ("bool", None, None),
    "windows_open": ("bool", None, None),
    "sunroof_open": ("bool", None, None),
    "hood_open": ("bool", None, None),
    "trunk_open": ("bool", None, None),
    "charging_port_open": ("bool", None, None),
    "in_motion": ("bool", None, None),
    "asleep": ("bool", None, None),
    "reachable": ("bool", None, None),
    # Unreachable (as reachable=false) until this Unix time, then reachable again by itself: a
    # car in a garage or out of coverage at a trip's start, for tests and benchmarks.
    "unreachable_until": ("opt_num", 0, 1e11),
    "remote_access_enabled": ("bool", None, None),
    "service_mode": ("bool", None, None),
    "ignition_on": ("bool", None, None),
    "is_plugged_in": ("bool", None, None),
    "is_charging": ("bool", None, None),
    "charge_limit": ("num", 0.5, 1),
    "virtual_key": ("bool", None, None),
    "latency_profile": ("enum:instant|realistic", None, None),
    "latency_ms": ("opt_int", 0, catalog.MAX_LATENCY_MS),
    "rate_limit_requests": ("opt_int", 1, 1_000_000),
    "rate_limit_window_s": ("num", 1, 86_400),
    "data_age_s": ("opt_int", 0, 365 * 86_400),
    "engine_oil_life": ("num", 0, 1),
    "tire_pressure_kpa": ("num", 50, 500),
}
CREATE_REQUIRED = ("make", "model", "year", "owner_email", "latitude", "longitude")


def _check(name: str, value: Any) -> Any:
    kind, low, high = FIELDS[name]
    if kind == "bool":
        if not isinstance(value, bool):
            raise validation(f"{name} must be true or false", name)
        return value
    if kind in ("opt_int", "opt_num") and value is None:
        return None
    if kind in ("int", "opt_int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise validation(f"{name} must be an integer", name)
    elif kind in ("num", "opt_num"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise validation(f"{name} must be a number", name)
    elif kind in ("str", "email") or kind.startswith("enum:"):
        if not isinstance(value, str) or not value.strip():
            raise validation(f"{name} must be a non-empty string", name)
        value = value.strip()
        if kind == "email" and not EMAIL_RE.match(value):
            raise validation(f"{name} must be an email address", name)
        if kind == "email":
            value = value.lower()
        if kind.startswith("enum:"):
            allowed = kind[5:].split("|")
            if name == "powertrain":
                value = value.upper()
            if value not in allowed:
                raise validation(f"{name} must be one of {', '.join(allowed)}", name)
        if name == "make":
            value = value.upper()
        return value
    if (low is not None and value < low) or (high is not None and value > high):
        raise validation(f"{name} must be between {low} and {high}", name)
    return value


def vehicle_new(data: Any, *, now: float, existing_vins: set[str]) -> dict[str, Any]:
    """Validate a POST /_sim/vehicles body and return the new vehicle's state."""
    if not isinstance(data, dict):
        raise validation("the body must be a JSON object")
    allowed = set(FIELDS) | {"vin", "id"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise validation(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    for name in CREATE_REQUIRED:
        if name not in data:
            raise validation(f"{name} is required", name)
    clean = {name: _check(name, value) for name, value in data.items() if name in FIELDS}
    vin = data.get("vin")
    if vin is None:
        vin = catalog.random_vin()
        while vin in existing_vins:
            vin = catalog.random_vin()
    elif not isinstance(vin, str) or not VIN_RE.match(vin.upper()):
        raise validation(
            "vin must be 17 characters: digits and capital letters except I, O, Q", "vin"
        )
    vin = vin.upper()
    if vin in existing_vins:
        raise validation("a vehicle with this vin already exists", "vin")
    vehicle_id = data.get("id") or str(uuid.uuid4())
    if not isinstance(vehicle_id, str) or not is_uuid(vehicle_id):
        raise validation("id must be a UUID", "id")
    make = clean["make"]
    profile = catalog.make_profile(make)
    powertrain = clean.get("powertrain")
    if powertrain is None:
        has_fuel, has_battery = "fuel_percent" in clean, "battery_percent" in clean
        if has_fuel and has_battery:
            powertrain = "PHEV"
        elif has_battery:
            powertrain = "BEV"
        elif has_fuel:
            powertrain = "ICE"
        else:
            powertrain = profile.default_powertrain
    vehicle: dict[str, Any] = {
        "id": vehicle_id.lower(),
        "vin": vin,
        "make": make,
        "model": clean["model"],
        "year": clean["year"],
        "owner_email": clean["owner_email"],
        "powertrain": powertrain,
        "latitude": float(clean["latitude"]),
        "longitude": float(clean["longitude"]),
        "heading_deg": 0.0,
        "speed_kmh": 40.0,
        "odometer_km": 10_000.0,
        "fuel_percent": 80.0 if powertrain != "BEV" else None,
        "fuel_capacity_l": 50.0,
        "battery_percent": 80.0 if powertrain in ("BEV", "PHEV") else None,
        "battery_capacity_kwh": 75.0 if powertrain == "BEV" else 15.0,
        "is_locked": True,
        "doors_open": False,
        "windows_open": False,
        "sunroof_open": False,
        "hood_open": False,
        "trunk_open": False,
        "charging_port_open": False,
        "in_motion": False,
        "asleep": False,
        "reachable": True,
        "unreachable_until": None,
        "remote_access_enabled": True,
        "service_mode": False,
        "ignition_on": False,
        "is_plugged_in": False,
        "is_charging": False,
        "charge_limit": 0.8,
        # Tesla commands need a paired virtual key; the simulated owner paired it unless told.
        "virtual_key": True,
        "latency_profile": "instant",
        "latency_ms": None,
        "rate_limit_requests": 120,
        "rate_limit_window_s": 60.0,
        "data_age_s": None,
        "engine_oil_life": 0.7,
        "tire_pressure_kpa": 240.0,
        "forced_error": None,
        "faults": [],
        "created_at": iso(now),
        # Orders an owner's vehicles as they were added: created_at has only millisecond
        # resolution, so two cars added in one millisecond would otherwise tie.
        "created_ns": time.time_ns(),
        "updated_at": now,
    }
    vehicle.update({k: v for k, v in clean.items() if k != "powertrain"})
    if powertrain == "BEV":
        vehicle["fuel_percent"] = None
    return vehicle


def vehicle_patch(vehicle: dict[str, Any], data: Any, *, now: float) -> None:
    if not isinstance(data, dict):
        raise validation("the body must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise validation(f"unknown or read-only field(s): {', '.join(unknown)}", unknown[0])
    clean = {name: _check(name, value) for name, value in data.items()}
    if clean.get("in_motion") and not vehicle["in_motion"]:
        vehicle["motion_since"] = now
    vehicle.update(clean)
    vehicle["updated_at"] = now


def advance(vehicle: dict[str, Any], now: float) -> bool:
    """Bring a driving or charging car up to the clock; returns whether its state changed."""
    last = vehicle.get("motion_since") or now
    vehicle["motion_since"] = now
    if now <= last:
        return False
    hours = (now - last) / 3600
    if vehicle["in_motion"] and vehicle["speed_kmh"] > 0:
        drive(vehicle, vehicle["speed_kmh"] * hours, now=now)
        return True
    battery = vehicle["battery_percent"]
    if vehicle["is_charging"] and vehicle["is_plugged_in"] and battery is not None:
        target = vehicle["charge_limit"] * 100
        if battery < target:
            gained = CHARGER_KW * hours / vehicle["battery_capacity_kwh"] * 100
            vehicle["battery_percent"] = round(min(target, battery + gained), 4)
            vehicle["updated_at"] = now
            return True
    return False


def drive(vehicle: dict[str, Any], distance_km: float, *, now: float) -> float:
    """Drive along the heading: position, odometer, fuel and battery follow. Returns km driven."""
    distance_km = min(distance_km, _range_km(vehicle) if _range_km(vehicle) is not None else 0)
    if distance_km <= 0:
        vehicle["in_motion"] = False
        return 0.0
    heading = math.radians(vehicle["heading_deg"])
    lat = vehicle["latitude"] + distance_km * math.cos(heading) / 111.32
    lat = max(-89.9, min(89.9, lat))
    cos_lat = max(0.01, math.cos(math.radians(lat)))
    lon = vehicle["longitude"] + distance_km * math.sin(heading) / (111.32 * cos_lat)
    vehicle["latitude"] = round(lat, 6)
    vehicle["longitude"] = round((lon + 180) % 360 - 180, 6)
    vehicle["odometer_km"] = round(vehicle["odometer_km"] + distance_km, 3)
    if vehicle["powertrain"] == "BEV" or (
        vehicle["powertrain"] == "PHEV" and (vehicle["battery_percent"] or 0) > 0
    ):
        used = distance_km * BEV_KWH_PER_100KM / 100 / vehicle["battery_capacity_kwh"] * 100
        vehicle["battery_percent"] = round(max(0.0, vehicle["battery_percent"] - used), 4)
    else:
        used = distance_km * ICE_L_PER_100KM / 100 / vehicle["fuel_capacity_l"] * 100
        vehicle["fuel_percent"] = round(max(0.0, vehicle["fuel_percent"] - used), 4)
    if (_range_km(vehicle) or 0) <= 0:
        vehicle["in_motion"] = False
    vehicle["updated_at"] = now
    return distance_km


def _fuel_range_km(v: dict[str, Any]) -> float | None:
    if v["fuel_percent"] is None:
        return None
    return v["fuel_percent"] / 100 * v["fuel_capacity_l"] / ICE_L_PER_100KM * 100


def _battery_range_km(v: dict[str, Any]) -> float | None:
    if v["battery_percent"] is None:
        return None
    return v["battery_percent"] / 100 * v["battery_capacity_kwh"] / BEV_KWH_PER_100KM * 100


def _range_km(v: dict[str, Any]) -> float | None:
    parts = [r for r in (_fuel_range_km(v), _battery_range_km(v)) if r is not None]
    return sum(parts) if parts else None


def public_state(vehicle: dict[str, Any], commands: list[dict[str, Any]] | None) -> dict[str, Any]:
    state = {k: v for k, v in vehicle.items() if k not in ("motion_since", "updated_at")}
    state["updated_at"] = iso(vehicle["updated_at"])
    state["range_km"] = None if _range_km(vehicle) is None else round(_range_km(vehicle), 2)
    if commands is not None:
        state["commands"] = [
            {k: c[k] for k in ("action", "received_at", "applied_at", "result")} for c in commands
        ]
    return state


# -- v2.0 wire bodies ------------------------------------------------------------------------
def _dist(km: float | None, imperial: bool) -> float | None:
    if km is None:
        return None
    return round(km / KM_PER_MILE if imperial else km, 2)


UNIT_ENDPOINTS = frozenset({"odometer", "fuel", "battery", "tires/pressure"})


def read_body(vehicle: dict[str, Any], endpoint: str, *, imperial: bool) -> dict[str, Any]:
    v = vehicle
    if endpoint == "attributes":
        return {"id": v["id"], "make": v["make"], "model": v["model"], "year": v["year"]}
    if endpoint == "vin":
        return {"vin": v["vin"]}
    if endpoint == "location":
        return {"latitude": v["latitude"], "longitude": v["longitude"]}
    if endpoint == "odometer":
        return {"distance": _dist(v["odometer_km"], imperial)}
    if endpoint == "fuel":
        litres = v["fuel_percent"] / 100 * v["fuel_capacity_l"]
        amount = litres / LITRES_PER_US_GALLON if imperial else litres
        return {
            "amountRemaining": round(amount, 2),
            "percentRemaining": round(v["fuel_percent"] / 100, 4),
            "range": _dist(_fuel_range_km(v), imperial),
        }
    if endpoint == "battery":
        return {
            "percentRemaining": round(v["battery_percent"] / 100, 4),
            "range": _dist(_battery_range_km(v), imperial),
        }
    if endpoint == "battery/capacity":
        return {"capacity": v["battery_capacity_kwh"]}
    if endpoint == "charge":
        if v["is_charging"] and v["is_plugged_in"]:
            state = (
                "FULLY_CHARGED" if v["battery_percent"] / 100 >= v["charge_limit"] else "CHARGING"
            )
        else:
            state = "NOT_CHARGING"
        return {"isPluggedIn": v["is_plugged_in"], "state": state}
    if endpoint == "charge/limit":
        return {"limit": v["charge_limit"]}
    if endpoint == "engine/oil":
        return {"lifeRemaining": v["engine_oil_life"]}
    if endpoint == "tires/pressure":
        p = round(v["tire_pressure_kpa"] * PSI_PER_KPA if imperial else v["tire_pressure_kpa"], 1)
        return {"backLeft": p, "backRight": p, "frontLeft": p, "frontRight": p}
    if endpoint == "security":

        def st(is_open: bool) -> str:
            return "OPEN" if is_open else "CLOSED"

        return {
            "isLocked": v["is_locked"],
            "doors": [
                {"type": t, "status": st(v["doors_open"] and t == "frontLeft")} for t in DOOR_TYPES
            ],
            "windows": [{"type": t, "status": st(v["windows_open"])} for t in DOOR_TYPES],
            "sunroof": [{"type": "sunroof", "status": st(v["sunroof_open"])}],
            "storage": [
                {"type": "rear", "status": st(v["trunk_open"])},
                {"type": "front", "status": st(v["hood_open"])},
            ],
            "chargingPort": (
                [{"type": "chargingPort", "status": st(v["charging_port_open"])}]
                if v["powertrain"] in ("BEV", "PHEV")
                else []
            ),
        }
    raise ApiError("RESOURCE_NOT_FOUND", "PATH")


def is_reachable(vehicle: dict[str, Any]) -> bool:
    until = vehicle.get("unreachable_until")
    return bool(vehicle["reachable"]) and (until is None or until <= time.time())


def command_refusal(vehicle: dict[str, Any], action: str) -> str | None:
    """The VEHICLE_STATE code that stops a command now, or None."""
    v = vehicle
    if not is_reachable(v):
        return "UNREACHABLE"
    if v["service_mode"]:
        return "VEHICLE_OFFLINE_FOR_SERVICE"
    if not v["remote_access_enabled"]:
        return "REMOTE_ACCESS_DISABLED"
    if v["asleep"]:
        return "ASLEEP"
    if v["in_motion"]:
        return "IN_MOTION"
    if v["ignition_on"]:
        return "IGNITION_ON"
    if action == "LOCK":
        if v["doors_open"]:
            return "DOOR_OPEN"
        if v["hood_open"]:
            return "HOOD_OPEN"
        if v["trunk_open"]:
            return "TRUNK_OPEN"
    return None


def read_refusal(vehicle: dict[str, Any]) -> str | None:
    """Reads come from the OEM cloud: a sleeping car still answers, an unreachable one does not."""
    if not is_reachable(vehicle):
        return "UNREACHABLE"
    if not vehicle["remote_access_enabled"]:
        return "REMOTE_ACCESS_DISABLED"
    return None
