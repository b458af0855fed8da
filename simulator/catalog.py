"""Static knowledge: permissions, endpoints, per-make capabilities and latency profiles.

The reference (§6) has no canonical per-brand lock/unlock table, so the one here is the
simulator's own choice, kept small and documented in simulator/README.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

READ_PERMISSIONS = (
    "read_alerts",
    "read_battery",
    "read_charge",
    "read_charge_locations",
    "read_charge_records",
    "read_charge_events",
    "read_climate",
    "read_compass",
    "read_diagnostics",
    "read_engine_oil",
    "read_extended_vehicle_info",
    "read_fuel",
    "read_location",
    "read_odometer",
    "read_security",
    "read_service_history",
    "read_speedometer",
    "read_thermometer",
    "read_tires",
    "read_user_profile",
    "read_vehicle_info",
    "read_vin",
)
CONTROL_PERMISSIONS = (
    "control_charge",
    "control_climate",
    "control_navigation",
    "control_security",
    "control_pin",
    "control_trunk",
)
ALL_PERMISSIONS = frozenset(READ_PERMISSIONS + CONTROL_PERMISSIONS)

PERMISSION_LABELS = {
    "read_vehicle_info": "Know make, model, and year",
    "read_vin": "Read VIN",
    "read_location": "Access the vehicle's location",
    "read_odometer": "Retrieve total distance traveled",
    "read_fuel": "Read the fuel tank level",
    "read_battery": "Read the EV battery's capacity and state of charge",
    "read_charge": "Know whether the vehicle is charging",
    "read_security": "Read the lock status of doors, windows and more",
    "control_security": "Lock or unlock the vehicle",
    "control_charge": "Start or stop charging",
    "read_engine_oil": "Read the vehicle's engine oil health",
    "read_tires": "Read the vehicle's tire pressure",
}

# Vehicle endpoint name -> (permission, is it "static" data that forced errors never hit).
ENDPOINTS: dict[str, tuple[str, bool]] = {
    "attributes": ("read_vehicle_info", True),
    "vin": ("read_vin", True),
    "permissions": ("", True),
    "location": ("read_location", False),
    "odometer": ("read_odometer", False),
    "fuel": ("read_fuel", False),
    "battery": ("read_battery", False),
    "battery/capacity": ("read_battery", False),
    "charge": ("read_charge", False),
    "charge/limit": ("read_charge", False),
    "engine/oil": ("read_engine_oil", False),
    "tires/pressure": ("read_tires", False),
    "security": ("read_security", False),
    "security:command": ("control_security", False),
    "application": ("", True),
    "batch": ("", True),
}
FAULT_ENDPOINTS = frozenset(
    {e for e in ENDPOINTS if e != "security:command"}
)  # "security" covers the GET and the POST

MAKES = (
    "ACURA",
    "AUDI",
    "BMW",
    "BUICK",
    "CADILLAC",
    "CHEVROLET",
    "FORD",
    "GMC",
    "HYUNDAI",
    "JAGUAR",
    "KIA",
    "LAND ROVER",
    "LINCOLN",
    "MAZDA",
    "MERCEDES-BENZ",
    "MINI",
    "NISSAN",
    "RENAULT",
    "SKODA",
    "TESLA",
    "TOYOTA",
    "VOLKSWAGEN",
    "VOLVO",
)


@dataclass(frozen=True)
class MakeProfile:
    lock_unlock: bool  # supports control_security
    default_powertrain: str  # ICE or BEV when the vehicle does not say
    virtual_key: bool  # commands need a paired virtual key (Tesla)
    command_latency_s: tuple[float, float]  # "realistic" profile, uniform range
    read_latency_s: tuple[float, float]
    data_age_s: int  # "realistic" profile: how old the OEM's cached data usually is


_DEFAULT = MakeProfile(True, "ICE", False, (5.0, 20.0), (1.0, 4.0), 60)
MAKE_PROFILES: dict[str, MakeProfile] = {
    "TESLA": MakeProfile(True, "BEV", True, (3.0, 8.0), (0.5, 2.0), 5),
    "FORD": MakeProfile(True, "ICE", False, (5.0, 15.0), (1.0, 3.0), 60),
    "LINCOLN": MakeProfile(True, "ICE", False, (5.0, 15.0), (1.0, 3.0), 60),
    "CHEVROLET": MakeProfile(True, "ICE", False, (10.0, 30.0), (2.0, 6.0), 300),
    "BUICK": MakeProfile(True, "ICE", False, (10.0, 30.0), (2.0, 6.0), 300),
    "CADILLAC": MakeProfile(True, "ICE", False, (10.0, 30.0), (2.0, 6.0), 300),
    "GMC": MakeProfile(True, "ICE", False, (10.0, 30.0), (2.0, 6.0), 300),
    "HYUNDAI": MakeProfile(True, "ICE", False, (15.0, 45.0), (2.0, 8.0), 72 * 60),
    "KIA": MakeProfile(True, "ICE", False, (15.0, 45.0), (2.0, 8.0), 72 * 60),
    "NISSAN": MakeProfile(True, "ICE", False, (10.0, 40.0), (2.0, 6.0), 120),
    "BMW": MakeProfile(True, "ICE", False, (8.0, 20.0), (1.0, 4.0), 600),
    "MINI": MakeProfile(True, "ICE", False, (8.0, 20.0), (1.0, 4.0), 600),
    "VOLKSWAGEN": MakeProfile(True, "ICE", False, (5.0, 20.0), (1.0, 4.0), 60),
    "MAZDA": MakeProfile(False, "ICE", False, (5.0, 20.0), (1.0, 4.0), 300),
    "TOYOTA": MakeProfile(False, "ICE", False, (5.0, 20.0), (1.0, 4.0), 300),
    "SKODA": MakeProfile(False, "ICE", False, (5.0, 20.0), (1.0, 4.0), 300),
}

LATENCY_PROFILES = ("instant", "realistic")
MAX_LATENCY_MS = 300_000


def make_profile(make: str) -> MakeProfile:
    return MAKE_PROFILES.get(make.upper(), _DEFAULT)


def command_latency_s(make: str, profile: str, latency_ms: int | None) -> float:
    """How long a command takes before the car acts on it."""
    if latency_ms is not None:
        return latency_ms / 1000
    if profile == "realistic":
        low, high = make_profile(make).command_latency_s
        return random.uniform(low, high)  # noqa: S311 - jitter, not security
    return 0.0


def read_latency_s(make: str, profile: str) -> float:
    if profile == "realistic":
        low, high = make_profile(make).read_latency_s
        return random.uniform(low, high)  # noqa: S311 - jitter, not security
    return 0.0


def supports(powertrain: str, endpoint: str) -> bool:
    """Fuel endpoints need a tank, battery/charge endpoints need a traction battery."""
    if endpoint == "fuel":
        return powertrain in ("ICE", "PHEV", "HEV")
    if endpoint.startswith(("battery", "charge")):
        return powertrain in ("BEV", "PHEV")
    if endpoint == "engine/oil":
        return powertrain != "BEV"
    return True


def permission_supported(make: str, powertrain: str, permission: str) -> bool:
    if permission == "control_security":
        return make_profile(make).lock_unlock
    if permission == "read_fuel":
        return supports(powertrain, "fuel")
    if permission in ("read_battery", "read_charge", "control_charge"):
        return supports(powertrain, "battery")
    return True


# Connect's magic test emails (reference §1.3 and §5.2).
CONNECT_ERROR_EMAILS = {
    "smartcar@invalid-subscription.com": ("invalid_subscription", "0SCAUDI0155C49A95"),
    "smartcar@vehicle-incompatible.com": ("vehicle_incompatible", "0SCAUDI012FE3B132"),
    "smartcar@server-error.com": ("server_error", None),  # the simulator's own addition
    "smartcar@configuration-error.com": ("configuration_error", None),  # same
}
CONNECT_ERROR_DESCRIPTIONS = {
    "access_denied": "User denied access to application.",
    "invalid_subscription": "The vehicle's connected services subscription is inactive or was never activated.",
    "vehicle_incompatible": "The vehicle is not compatible with this application.",
    "no_vehicles": "The user's connected services account has no vehicles.",
    "configuration_error": "The user encountered an error in Connect and returned to the application.",
    "server_error": "Unexpected server error. Please try again.",
}

API_ERROR_EMAIL_VINS = {
    "COMPATIBILITY.MAKE_NOT_COMPATIBLE": "0SCLR000270BE6600",
    "COMPATIBILITY.SMARTCAR_NOT_CAPABLE": "0SCLR0002DC18F57F",
    "COMPATIBILITY.VEHICLE_NOT_CAPABLE": "0SCLR00024C7CDF7A",
    "CONNECTED_SERVICES_ACCOUNT.ACCOUNT_ISSUE": "0SCLR00026BAAA136",
    "CONNECTED_SERVICES_ACCOUNT.AUTHENTICATION_FAILED": "0SCLR00021D803C7B",
    "CONNECTED_SERVICES_ACCOUNT.NO_VEHICLES": "0SCLR00027671837B",
    "CONNECTED_SERVICES_ACCOUNT.SUBSCRIPTION": "0SCLR0002B9BAF29F",
    "CONNECTED_SERVICES_ACCOUNT.VEHICLE_MISSING": "0SCLR00024E29EEBD",
    "UPSTREAM.INVALID_DATA": "0SCLR000298A0A649",
    "UPSTREAM.KNOWN_ISSUE": "0SCLR0002A8760B72",
    "UPSTREAM.NO_RESPONSE": "0SCLR0002C23E43AB",
    "UPSTREAM.UNKNOWN_ISSUE": "0SCLR0002D4878901",
    "VEHICLE_STATE.ASLEEP": "0SCLR0002E8896323",
    "VEHICLE_STATE.CHARGING_IN_PROGRESS": "0SCLR000221F1E672",
    "VEHICLE_STATE.CHARGING_PLUG_NOT_CONNECTED": "0SCLR0002CBFC7C21",
    "VEHICLE_STATE.DOOR_OPEN": "0SCLR0002F8BD90B8",
    "VEHICLE_STATE.FULLY_CHARGED": "0SCLR00029CD9D894",
    "VEHICLE_STATE.HOOD_OPEN": "0SCLR000219CD4A2C",
    "VEHICLE_STATE.IGNITION_ON": "0SCLR00021D49E58A",
    "VEHICLE_STATE.IN_MOTION": "0SCLR00024F6EE640",
    "VEHICLE_STATE.REMOTE_ACCESS_DISABLED": "0SCLR0002588A5CC1",
    "VEHICLE_STATE.TRUNK_OPEN": "0SCLR00023C607FDB",
    "VEHICLE_STATE.UNKNOWN": "0SCLR0002E6CC0314",
    "VEHICLE_STATE.UNREACHABLE": "0SCLR000247EBF067",
    "VEHICLE_STATE.VEHICLE_OFFLINE_FOR_SERVICE": "0SCLR0002AF1D71A1",
}

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q


def random_vin() -> str:
    return "0SC" + "".join(random.choice(VIN_ALPHABET) for _ in range(14))  # noqa: S311
