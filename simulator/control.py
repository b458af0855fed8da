"""The control API under /_sim/: a fixed contract for tests and demos (see simulator/README.md)."""

from __future__ import annotations

import math
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from simulator import catalog, connect, errors, vehicles
from simulator.app import SIM_KEY, Sim, json_body, json_response
from simulator.errors import ApiError, validation


def _sim(request: web.Request) -> Sim:
    return request.app[SIM_KEY]


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise validation(f"{name} must be a non-empty string", name)
    return value.strip()


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise validation("the body must be a JSON object")
    return data


def _absolute_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def client_upsert(sim: Sim, data: Any) -> tuple[dict[str, Any], bool]:
    data = _object(data)
    client_id = _str(data, "client_id")
    secret = _str(data, "client_secret")
    uris = data.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(_absolute_url(u) for u in uris):
        raise validation(
            "redirect_uris must be a non-empty list of absolute http(s) URLs", "redirect_uris"
        )
    token = _str(data, "management_token") if data.get("management_token") is not None else None
    app_rate_limit = data.get("app_rate_limit")
    if app_rate_limit is not None:
        requests_ = app_rate_limit.get("requests") if isinstance(app_rate_limit, dict) else None
        refill = (
            app_rate_limit.get("refill_per_minute") if isinstance(app_rate_limit, dict) else None
        )
        if (
            isinstance(requests_, bool)
            or not isinstance(requests_, int)
            or requests_ < 1
            or isinstance(refill, bool)
            or not isinstance(refill, int | float)
            or not 0 < refill <= 1_000_000
        ):
            raise validation(
                "app_rate_limit must be {requests: integer >= 1, refill_per_minute: number > 0}",
                "app_rate_limit",
            )
    client = {
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uris": list(uris),
        "management_token": token or str(uuid.uuid4()),
        "app_rate_limit": app_rate_limit,
    }
    created = sim.store.get("client", client_id) is None
    sim.store.put("client", client_id, client)
    return client, created


def vehicle_or_404(sim: Sim, vehicle_id: str) -> dict[str, Any]:
    vehicle = sim.store.get("vehicle", vehicle_id.lower())
    if vehicle is None:
        raise ApiError(
            "RESOURCE_NOT_FOUND", "PATH", description=f"No vehicle with id {vehicle_id}."
        )
    if vehicles.advance(vehicle, sim.store.now()):
        sim.store.put("vehicle", vehicle["id"], vehicle)
    return vehicle


async def health(request: web.Request) -> web.Response:
    sim = _sim(request)
    return json_response(
        {
            "status": "ok",
            "vehicles": len(sim.store.tables["vehicle"]),
            "in_flight_commands": sim.in_flight,
            "max_in_flight_commands": sim.max_in_flight,
        }
    )


async def clients_create(request: web.Request) -> web.Response:
    client, _created = client_upsert(_sim(request), await json_body(request))
    return json_response(client, status=201)


async def clients_list(request: web.Request) -> web.Response:
    return json_response({"clients": _sim(request).store.all("client")})


async def vehicles_create(request: web.Request) -> web.Response:
    sim = _sim(request)
    existing = {v["vin"] for v in sim.store.all("vehicle")}
    data = await json_body(request)
    if isinstance(data, dict) and "latency_profile" not in data:
        data["latency_profile"] = sim.default_latency_profile
    vehicle = vehicles.vehicle_new(data, now=sim.store.now(), existing_vins=existing)
    if sim.store.get("vehicle", vehicle["id"]) is not None:
        raise validation("a vehicle with this id already exists", "id")
    sim.account_ensure(vehicle["owner_email"])
    sim.store.put("vehicle", vehicle["id"], vehicle)
    return json_response(vehicles.public_state(vehicle, []), status=201)


async def vehicles_list(request: web.Request) -> web.Response:
    sim = _sim(request)
    email = request.query.get("owner_email", "").strip().lower()
    vin = request.query.get("vin", "").strip().upper()
    found = []
    for vehicle in sim.store.all("vehicle"):
        if (email and vehicle["owner_email"] != email) or (vin and vehicle["vin"] != vin):
            continue
        vehicle_or_404(sim, vehicle["id"])  # brings a moving car up to date
        found.append(vehicles.public_state(vehicle, None))
    return json_response({"vehicles": found})


async def vehicle_detail(request: web.Request) -> web.Response:
    sim = _sim(request)
    vehicle = vehicle_or_404(sim, request.match_info["vehicle_id"])
    return json_response(vehicles.public_state(vehicle, sim.store.commands.get(vehicle["id"], [])))


async def vehicle_update(request: web.Request) -> web.Response:
    sim = _sim(request)
    vehicle = vehicle_or_404(sim, request.match_info["vehicle_id"])
    data = await json_body(request)
    candidate = dict(vehicle)
    vehicles.vehicle_patch(candidate, data, now=sim.store.now())  # validates before changing
    if candidate["owner_email"] != vehicle["owner_email"]:
        sim.account_ensure(candidate["owner_email"])
    vehicle.clear()
    vehicle.update(candidate)
    sim.store.put("vehicle", vehicle["id"], vehicle)
    return json_response(vehicles.public_state(vehicle, sim.store.commands.get(vehicle["id"], [])))


async def vehicle_faults_add(request: web.Request) -> web.Response:
    sim = _sim(request)
    vehicle = vehicle_or_404(sim, request.match_info["vehicle_id"])
    data = _object(await json_body(request))
    endpoint = _str(data, "endpoint")
    if endpoint != "*" and endpoint not in catalog.FAULT_ENDPOINTS:
        raise validation(
            f"endpoint must be * or one of {', '.join(sorted(catalog.FAULT_ENDPOINTS))}", "endpoint"
        )
    error_type = _str(data, "type")
    code = data.get("code")
    if code is not None and not isinstance(code, str):
        raise validation("code must be a string or null", "code")
    if not errors.is_known(error_type, code):
        raise validation(f"{error_type}:{code} is not in the error catalogue", "code")
    status = data.get("status", errors.STATUS_BY_TYPE[error_type])
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise validation("status must be an HTTP error status (400-599)", "status")
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
        raise validation("count must be an integer from 1 to 100000", "count")
    retry_after = data.get("retry_after")
    if retry_after is None and error_type == "RATE_LIMIT":
        retry_after = 60
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
    ):
        raise validation("retry_after must be a non-negative integer (seconds)", "retry_after")
    fault = {
        "endpoint": endpoint,
        "status": status,
        "type": error_type,
        "code": code,
        "remaining": count,
        "retry_after": retry_after,
    }
    vehicle["faults"].append(fault)
    sim.store.put("vehicle", vehicle["id"], vehicle)
    return json_response({"faults": vehicle["faults"]}, status=201)


async def vehicle_faults_clear(request: web.Request) -> web.Response:
    sim = _sim(request)
    vehicle = vehicle_or_404(sim, request.match_info["vehicle_id"])
    vehicle["faults"] = []
    sim.store.put("vehicle", vehicle["id"], vehicle)
    return json_response({"faults": []})


async def vehicle_drive(request: web.Request) -> web.Response:
    sim = _sim(request)
    vehicle = vehicle_or_404(sim, request.match_info["vehicle_id"])
    data = _object(await json_body(request))
    distance = data.get("distance_km")
    if (
        isinstance(distance, bool)
        or not isinstance(distance, int | float)
        or not math.isfinite(distance)
        or not 0 < distance <= 5000
    ):
        raise validation("distance_km must be a number above 0 and at most 5000", "distance_km")
    if "heading_deg" in data:
        vehicles.vehicle_patch(vehicle, {"heading_deg": data["heading_deg"]}, now=sim.store.now())
    driven = vehicles.drive(vehicle, float(distance), now=sim.store.now())
    sim.store.put("vehicle", vehicle["id"], vehicle)
    state = vehicles.public_state(vehicle, None)
    state["driven_km"] = round(driven, 3)
    return json_response(state)


async def consent(request: web.Request) -> web.Response:
    sim = _sim(request)
    data = _object(await json_body(request))
    url = connect.connect_headless(sim, data)
    return json_response({"redirect_url": url})


async def reset(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.store.reset()
    sim.buckets.clear()
    sim.connect_sessions.clear()
    sim.max_in_flight = sim.in_flight
    sim.register_env_clients()  # startup configuration, not state
    return json_response({"status": "reset"})


async def clock_get(request: web.Request) -> web.Response:
    store = _sim(request).store
    return json_response({"now": vehicles.iso(store.now()), "offset_s": store.clock_offset})


async def clock_advance(request: web.Request) -> web.Response:
    sim = _sim(request)
    data = _object(await json_body(request))
    seconds = data.get("advance_seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= 400 * 86_400
    ):
        raise validation("advance_seconds must be a number from 0 to 34560000", "advance_seconds")
    sim.store.advance_clock(float(seconds))
    return json_response({"now": vehicles.iso(sim.store.now()), "offset_s": sim.store.clock_offset})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/health", health)
    r.add_post("/_sim/clients", clients_create)
    r.add_get("/_sim/clients", clients_list)
    r.add_post("/_sim/vehicles", vehicles_create)
    r.add_get("/_sim/vehicles", vehicles_list)
    r.add_get("/_sim/vehicles/{vehicle_id}", vehicle_detail)
    r.add_patch("/_sim/vehicles/{vehicle_id}", vehicle_update)
    r.add_post("/_sim/vehicles/{vehicle_id}/faults", vehicle_faults_add)
    r.add_delete("/_sim/vehicles/{vehicle_id}/faults", vehicle_faults_clear)
    r.add_post("/_sim/vehicles/{vehicle_id}/drive", vehicle_drive)
    r.add_post("/_sim/connect", consent)
    r.add_post("/_sim/reset", reset)
    r.add_get("/_sim/clock", clock_get)
    r.add_post("/_sim/clock", clock_advance)
