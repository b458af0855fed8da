"""Smartcar Connect's decisions: authorize parameters, which cars an owner may pick, the
redirect back to the app (a code, or an error code of reference §1.3), and the headless consent
of POST /_sim/connect. The pages that drive it live in connect_views.py."""

from __future__ import annotations

import random
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from simulator import catalog
from simulator.app import Sim
from simulator.errors import validation
from simulator.vehicles import VIN_RE, vehicle_new

CODE_TTL_S = 600
MODES = ("live", "simulated", "test")
VIRTUAL_KEY_URL = "https://www.tesla.com/_ak/smartcar.com"


class ConnectProblem(Exception):
    """Connect cannot go on. With return_ok the page offers a way back (configuration_error)."""

    def __init__(self, message: str, *, return_ok: bool) -> None:
        super().__init__(message)
        self.message = message
        self.return_ok = return_ok
        self.session: dict[str, Any] | None = None  # what was parsed, to redirect back with


def redirect_with(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def error_redirect(session: dict[str, Any], error: str, **extra: str) -> str:
    params = {"error": error, "error_description": catalog.CONNECT_ERROR_DESCRIPTIONS[error]}
    params.update(extra)
    if session.get("state") is not None:
        params["state"] = session["state"]
    return redirect_with(session["redirect_uri"], params)


def parse_scope(raw: Any) -> list[tuple[str, bool]]:
    """Space-separated names, `required:` marking mandatory ones; returns (name, required)."""
    if isinstance(raw, list):
        if not all(isinstance(x, str) for x in raw):
            raise ConnectProblem("scope must be a list of strings", return_ok=True)
        items = raw
    elif isinstance(raw, str):
        items = raw.split()
    else:
        raise ConnectProblem("scope must be a string", return_ok=True)
    found: dict[str, bool] = {}
    for item in items:
        required = item.startswith("required:")
        name = item.removeprefix("required:")
        if name not in catalog.ALL_PERMISSIONS:
            raise ConnectProblem(f"Unknown permission in scope: {name}", return_ok=True)
        found[name] = found.get(name, False) or required
    if not found:
        found["read_vehicle_info"] = False  # no scope: what a Dashboard default would grant
    return list(found.items())


def connect_session(sim: Sim, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the authorize parameters; a ConnectProblem says why they are unusable."""
    client_id = params.get("client_id")
    client = sim.store.get("client", client_id) if isinstance(client_id, str) else None
    if client is None:
        raise ConnectProblem(
            "Unknown client_id: this application is not registered.", return_ok=False
        )
    redirect_uri = params.get("redirect_uri") or client["redirect_uris"][0]
    if redirect_uri not in client["redirect_uris"]:
        raise ConnectProblem(
            "The redirect_uri is not registered for this application.", return_ok=False
        )
    session: dict[str, Any] = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "redirect_uri_given": bool(params.get("redirect_uri")),
        "state": params.get("state"),
    }
    if not isinstance(session["state"], str | None):
        raise ConnectProblem("state must be a string", return_ok=False)
    try:  # from here on the redirect_uri is trusted: errors may send the owner back to the app
        if params.get("response_type", "code") != "code":
            raise ConnectProblem("response_type must be code.", return_ok=True)
        session["scope"] = parse_scope(params.get("scope", ""))
        mode = params.get("mode") or "live"
        if mode not in MODES:
            raise ConnectProblem("mode must be live, simulated or test.", return_ok=True)
        session["mode"] = mode
        prompt = params.get("approval_prompt") or "auto"
        if prompt not in ("auto", "force"):
            raise ConnectProblem("approval_prompt must be auto or force.", return_ok=True)
        session["approval_prompt"] = prompt
        single = params.get("single_select")
        if isinstance(single, bool):
            single = "true" if single else "false"
        if single not in (None, "", "true", "false"):
            raise ConnectProblem("single_select must be true or false.", return_ok=True)
        session["single_select"] = single == "true"
        vin = params.get("single_select_vin")
        session["single_select_vin"] = (
            vin.upper() if isinstance(vin, str) and vin and session["single_select"] else None
        )
        make = params.get("make")
        session["make"] = make.upper() if isinstance(make, str) and make.strip() else None
    except ConnectProblem as problem:
        problem.session = session
        raise
    return session


def eligible_vehicles(sim: Sim, session: dict[str, Any], email: str) -> list[dict[str, Any]]:
    found = [v for v in sim.store.all("vehicle") if v["owner_email"] == email]
    if session.get("single_select_vin"):
        found = [v for v in found if v["vin"] == session["single_select_vin"]]
    elif session.get("make"):
        found = [v for v in found if v["make"] == session["make"]]
    return sorted(found, key=lambda v: (v["created_at"], v.get("created_ns", 0), v["id"]))


def magic_vehicle(sim: Sim, email: str, session: dict[str, Any]) -> None:
    """`<TYPE>.<CODE>@smartcar.com` signs in to a car that answers with that error (§5.2)."""
    local, _, domain = email.partition("@")
    key = local.upper()
    if domain != "smartcar.com" or key not in catalog.API_ERROR_EMAIL_VINS:
        return
    vin = catalog.API_ERROR_EMAIL_VINS[key]
    sim.account_ensure(email)
    if any(v["vin"] == vin for v in sim.store.all("vehicle")):
        return
    vehicle = vehicle_new(
        {
            "make": session.get("make") or "CHEVROLET",
            "model": "Volt",
            "year": 2017,
            "vin": vin,
            "owner_email": email,
            "latitude": 39.7392,
            "longitude": -104.9903,
            "fuel_percent": 60,
            "battery_percent": 60,
        },
        now=sim.store.now(),
        existing_vins=set(),
    )
    error_type, _, code = key.partition(".")
    vehicle["forced_error"] = {"type": error_type, "code": code}
    sim.store.put("vehicle", vehicle["id"], vehicle)


def test_mode_vehicle(sim: Sim, email: str, session: dict[str, Any]) -> None:
    """mode=test: any email signs in to a test car with random data (reference §5.2)."""
    if session.get("mode") != "test" or eligible_vehicles(sim, session, email):
        return
    make = session.get("make") or "CHEVROLET"
    rng = random.Random()  # noqa: S311 - test data, not security
    vin = session.get("single_select_vin") or ""
    if not VIN_RE.match(vin):
        vin = catalog.random_vin()
    if any(v["vin"] == vin for v in sim.store.all("vehicle")):
        return  # that VIN belongs to someone else's car
    vehicle = vehicle_new(
        {
            "make": make,
            "model": "Volt" if make == "CHEVROLET" else "Test Vehicle",
            "year": rng.randint(2016, 2024),
            "vin": vin,
            "owner_email": email,
            "latitude": round(rng.uniform(37.0, 41.0), 6),  # somewhere in Colorado
            "longitude": round(rng.uniform(-109.0, -102.05), 6),
            "odometer_km": round(rng.uniform(10_000, 300_000), 1),
        },
        now=sim.store.now(),
        existing_vins=set(),
    )
    sim.account_ensure(email)
    sim.store.put("vehicle", vehicle["id"], vehicle)


def connect_complete(
    sim: Sim,
    session: dict[str, Any],
    *,
    email: str,
    decision: str,
    vehicle_ids: list[str] | None,
    granted: list[str] | None,
) -> str:
    """Where Connect sends the browser after the owner decided: a code, or an error code."""
    email = email.strip().lower()
    if decision == "deny":
        return error_redirect(session, "access_denied")
    magic = catalog.CONNECT_ERROR_EMAILS.get(email)
    if magic is not None:
        error, vin = magic
        if error == "vehicle_incompatible":
            return error_redirect(
                session, error, vin=vin or "", make="AUDI", model="A4", year="2015"
            )
        return error_redirect(session, error)
    magic_vehicle(sim, email, session)
    test_mode_vehicle(sim, email, session)
    eligible = eligible_vehicles(sim, session, email)
    if not eligible:
        return error_redirect(session, "no_vehicles")
    by_id = {v["id"]: v for v in eligible}
    if vehicle_ids is None:
        chosen = eligible[:1] if session["single_select"] else eligible
    else:
        chosen = [by_id[i] for i in dict.fromkeys(vehicle_ids) if i in by_id]
        if len(chosen) != len(set(vehicle_ids)) or not chosen:
            raise validation("vehicle_ids must name vehicles of this account", "vehicle_ids")
        if session["single_select"] and len(chosen) > 1:
            raise validation("single_select allows one vehicle", "vehicle_ids")
    required = [name for name, req in session["scope"] if req]
    for vehicle in chosen:
        for name in required:
            if not catalog.permission_supported(vehicle["make"], vehicle["powertrain"], name):
                return error_redirect(
                    session,
                    "vehicle_incompatible",
                    vin=vehicle["vin"],
                    make=vehicle["make"],
                    model=vehicle["model"],
                    year=str(vehicle["year"]),
                )
    offered = [name for name, _ in session["scope"]]
    permissions = offered if granted is None else [p for p in offered if p in granted]
    permissions = list(dict.fromkeys(required + permissions))
    account = sim.account_ensure(email)
    now = sim.store.now()
    grant_id = str(uuid.uuid4())
    sim.store.put(
        "grant",
        grant_id,
        {
            "id": grant_id,
            "client_id": session["client_id"],
            "email": email,
            "user_id": account["user_id"],
            "vehicle_ids": [v["id"] for v in chosen],
            "disconnected": [],
            "permissions": permissions,
            "mode": session["mode"],
            "created_at": now,
        },
    )
    code = str(uuid.uuid4())
    sim.store.put(
        "code",
        code,
        {
            "code": code,
            "grant_id": grant_id,
            "client_id": session["client_id"],
            "redirect_uri": session["redirect_uri"],
            "redirect_uri_given": session["redirect_uri_given"],
            "expires_at": now + CODE_TTL_S,
            "used": False,
        },
    )
    params = {"code": code}
    if any(
        catalog.make_profile(v["make"]).virtual_key and not v["virtual_key"] for v in chosen
    ):  # Tesla: Connect hands the app the link where the owner adds the virtual key
        params["virtual_key_url"] = VIRTUAL_KEY_URL
    if session.get("state") is not None:
        params["state"] = session["state"]
    return redirect_with(session["redirect_uri"], params)


def connect_headless(sim: Sim, data: dict[str, Any]) -> str:
    """POST /_sim/connect: the same decision as the pages, without a browser."""
    try:
        session = connect_session(sim, {**data, "response_type": "code"})
    except ConnectProblem as problem:
        raise validation(problem.message) from problem
    email = data.get("owner_email")
    if not isinstance(email, str) or "@" not in email:
        raise validation("owner_email must be an email address", "owner_email")
    decision = data.get("decision")
    if decision not in ("approve", "deny"):
        raise validation('decision must be "approve" or "deny"', "decision")
    vehicle_ids = data.get("vehicle_ids")
    if vehicle_ids is not None and (
        not isinstance(vehicle_ids, list) or not all(isinstance(i, str) for i in vehicle_ids)
    ):
        raise validation("vehicle_ids must be a list of vehicle ids", "vehicle_ids")
    if vehicle_ids is not None:
        vehicle_ids = [i.lower() for i in vehicle_ids]
    return connect_complete(
        sim, session, email=email, decision=decision, vehicle_ids=vehicle_ids, granted=None
    )
