"""The Smartcar Vehicles API v2.0: one dispatcher so paths, versions and slashes are handled alike.

Checks run in the reference's order (§8 item 7): path and version, token (401), vehicle id
(400), vehicle in the grant (403), permission (403), body (400), then the vehicle itself:
injected faults, rate limit (429), capability (501/400) and state (409).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from simulator import catalog, management, vehicles, webhooks
from simulator.app import SIM_KEY, Sim, json_body, json_response
from simulator.errors import ApiError, validation

VERSION_RE = re.compile(r"^v\d+\.\d+$")
SUCCESS_ACTION = {"message": "Successfully sent request to vehicle", "status": "success"}
READ_ENDPOINTS = frozenset(
    {
        "attributes",
        "vin",
        "location",
        "odometer",
        "fuel",
        "battery",
        "battery/capacity",
        "charge",
        "charge/limit",
        "engine/oil",
        "tires/pressure",
        "security",
    }
)
DATA_ENDPOINTS = READ_ENDPOINTS - {"attributes", "vin"}


class Ctx:
    """One authenticated vehicle request."""

    def __init__(
        self, sim: Sim, grant: dict[str, Any], vehicle: dict[str, Any], imperial: bool
    ) -> None:
        self.sim = sim
        self.grant = grant
        self.vehicle = vehicle
        self.imperial = imperial


def _authenticate(sim: Sim, request: web.Request) -> dict[str, Any]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError("AUTHENTICATION")
    record = sim.store.get("access", token)
    if record is None or record["expires_at"] <= sim.store.now():
        raise ApiError("AUTHENTICATION")
    grant = sim.store.get("grant", record["grant_id"])
    if grant is None:
        raise ApiError("AUTHENTICATION")
    return grant


def _unit_system(request: web.Request) -> tuple[bool, str]:
    raw = request.headers.get("SC-Unit-System", "metric").strip().lower() or "metric"
    if raw not in ("metric", "imperial"):
        raise validation("SC-Unit-System must be metric or imperial", "sc-unit-system")
    return raw == "imperial", raw


def _paging(request: web.Request, *, default_limit: int, max_limit: int) -> tuple[int, int]:
    values = {}
    for name, default, low, high in (
        ("limit", default_limit, 1, max_limit),
        ("offset", 0, 0, 10**9),
    ):
        raw = request.query.get(name)
        if raw is None or raw == "":
            values[name] = default
            continue
        if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
            raise validation(f"{name} must be an integer from {low} to {high}", name)
        values[name] = int(raw)
    return values["limit"], values["offset"]


def _vehicle_for(sim: Sim, grant: dict[str, Any], vehicle_id: str) -> dict[str, Any]:
    if not vehicles.is_uuid(vehicle_id):
        raise validation("The vehicle id is malformed.", "vehicle_id")
    vehicle_id = vehicle_id.lower()
    if vehicle_id in grant["disconnected"]:
        raise ApiError("AUTHENTICATION")  # the app disconnected: this token is dead for the car
    vehicle = sim.store.get("vehicle", vehicle_id)
    if vehicle_id not in grant["vehicle_ids"] or vehicle is None:
        raise ApiError("PERMISSION")
    if vehicles.advance(vehicle, sim.store.now()):
        sim.store.put("vehicle", vehicle_id, vehicle)
    return vehicle


def _require(ctx: Ctx, permission: str) -> None:
    if permission and permission not in ctx.grant["permissions"]:
        raise ApiError("PERMISSION")


def _vehicle_side(ctx: Ctx, fault_endpoint: str, *, static: bool) -> None:
    """What the car or its cloud says before any data: forced errors, faults, throttling."""
    vehicle = ctx.vehicle
    for fault in vehicle["faults"]:
        if fault["remaining"] > 0 and fault["endpoint"] in (fault_endpoint, "*"):
            fault["remaining"] -= 1
            vehicle["faults"] = [f for f in vehicle["faults"] if f["remaining"] > 0]
            ctx.sim.store.put("vehicle", vehicle["id"], vehicle)
            raise ApiError(
                fault["type"],
                fault["code"],
                status=fault["status"],
                retry_after=fault["retry_after"],
            )
    forced = vehicle.get("forced_error")
    if forced and not static:
        raise ApiError(forced["type"], forced["code"])
    _throttle(ctx)


def _take(sim: Sim, key: str, capacity: int, per_second: float) -> int | None:
    """Take one token from a bucket on the simulator clock; None if taken, else seconds to wait."""
    now = sim.store.now()
    tokens, at = sim.buckets.get(key, (float(capacity), now))
    tokens = min(float(capacity), tokens + max(0.0, now - at) * per_second)
    if tokens < 1:
        sim.buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / per_second))
    sim.buckets[key] = (tokens - 1, now)
    return None


def _throttle(ctx: Ctx) -> None:
    """Per vehicle: rate_limit_requests per rate_limit_window_s (None: no throttle)."""
    vehicle = ctx.vehicle
    capacity = vehicle["rate_limit_requests"]
    if capacity is None:
        return
    wait = _take(ctx.sim, vehicle["id"], capacity, capacity / vehicle["rate_limit_window_s"])
    if wait is not None:
        raise ApiError("RATE_LIMIT", "VEHICLE", retry_after=wait)


def _app_throttle(sim: Sim, grant: dict[str, Any]) -> None:
    """The application's bucket (reference §3.5), only for clients registered with app_rate_limit."""
    client = sim.store.get("client", grant["client_id"])
    limit = client.get("app_rate_limit") if client else None
    if not limit:
        return
    wait = _take(
        sim, "client:" + client["client_id"], limit["requests"], limit["refill_per_minute"] / 60
    )
    if wait is not None:
        raise ApiError("RATE_LIMIT", "SMARTCAR_API", retry_after=wait)


def _data_headers(ctx: Ctx, endpoint: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    now = ctx.sim.store.now()
    if endpoint in DATA_ENDPOINTS:
        age = ctx.vehicle["data_age_s"]
        if age is None:
            age = (
                catalog.make_profile(ctx.vehicle["make"]).data_age_s
                if ctx.vehicle["latency_profile"] == "realistic"
                else 0
            )
        headers["SC-Data-Age"] = vehicles.iso(now - age)
        headers["SC-Fetched-At"] = vehicles.iso(now)
    if endpoint in vehicles.UNIT_ENDPOINTS:
        headers["SC-Unit-System"] = "imperial" if ctx.imperial else "metric"
    return headers


async def _read(
    ctx: Ctx, endpoint: str, *, wait: bool = True
) -> tuple[dict[str, Any], dict[str, str]]:
    permission, static = catalog.ENDPOINTS[endpoint]
    _require(ctx, permission)
    _vehicle_side(ctx, endpoint, static=static)
    vehicle = ctx.vehicle
    if not catalog.supports(vehicle["powertrain"], endpoint):
        raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    if not static:
        refusal = vehicles.read_refusal(vehicle)
        if refusal:
            raise ApiError("VEHICLE_STATE", refusal)
    delay = catalog.read_latency_s(vehicle["make"], vehicle["latency_profile"]) if wait else 0
    if delay:
        await asyncio.sleep(delay)
    return vehicles.read_body(vehicle, endpoint, imperial=ctx.imperial), _data_headers(
        ctx, endpoint
    )


async def _security(ctx: Ctx, data: Any) -> dict[str, Any]:
    """POST /security: LOCK or UNLOCK, applied only once the command latency has passed."""
    _require(ctx, "control_security")
    if not isinstance(data, dict) or data.get("action") not in ("LOCK", "UNLOCK"):
        raise validation('action must be "LOCK" or "UNLOCK"', "action")
    action = data["action"]

    def check(vehicle: dict[str, Any]) -> None:
        profile = catalog.make_profile(vehicle["make"])
        if not profile.lock_unlock:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
        if profile.virtual_key and not vehicle["virtual_key"]:
            raise ApiError("CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED")
        refusal = vehicles.command_refusal(vehicle, action)
        if refusal:
            raise ApiError("VEHICLE_STATE", refusal)

    def apply(vehicle: dict[str, Any]) -> None:
        vehicle["is_locked"] = action == "LOCK"

    return await _run_command(ctx, action, "security", check, apply)


async def _charge(ctx: Ctx, data: Any) -> dict[str, Any]:
    """POST /charge: START or STOP charging (Smartcar's simulator rules, reference §5.3)."""
    _require(ctx, "control_charge")
    if not isinstance(data, dict) or data.get("action") not in ("START", "STOP"):
        raise validation('action must be "START" or "STOP"', "action")
    start = data["action"] == "START"

    def check(vehicle: dict[str, Any]) -> None:
        _charge_capable(vehicle)
        if not vehicle["is_plugged_in"]:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        if start and vehicle["is_charging"]:
            raise ApiError("VEHICLE_STATE", "CHARGING_IN_PROGRESS")
        if start and vehicle["battery_percent"] / 100 >= vehicle["charge_limit"]:
            raise ApiError("VEHICLE_STATE", "FULLY_CHARGED")
        if not start and not vehicle["is_charging"]:
            raise ApiError("VEHICLE_STATE", "NOT_CHARGING")

    def apply(vehicle: dict[str, Any]) -> None:
        vehicle["is_charging"] = start

    action = "START_CHARGE" if start else "STOP_CHARGE"
    return await _run_command(ctx, action, "charge", check, apply)


async def _charge_limit(ctx: Ctx, data: Any) -> dict[str, Any]:
    """POST /charge/limit: {"limit": 0.5..1}; Node sends the number as a string (§7.8)."""
    _require(ctx, "control_charge")
    raw = data.get("limit") if isinstance(data, dict) else None
    try:
        limit = (
            float(raw) if isinstance(raw, int | float | str) and not isinstance(raw, bool) else None
        )
    except ValueError:
        limit = None
    if limit is None or not math.isfinite(limit) or not 0.5 <= limit <= 1:
        raise validation("limit must be a number from 0.5 to 1", "limit")

    def apply(vehicle: dict[str, Any]) -> None:
        vehicle["charge_limit"] = limit

    return await _run_command(ctx, "SET_CHARGE_LIMIT", "charge/limit", _charge_capable, apply)


def _charge_capable(vehicle: dict[str, Any]) -> None:
    if not catalog.supports(vehicle["powertrain"], "charge"):
        raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    refusal = vehicles.command_refusal(vehicle, "CHARGE")
    if refusal:
        raise ApiError("VEHICLE_STATE", refusal)


async def _run_command(
    ctx: Ctx,
    action: str,
    fault_endpoint: str,
    check: Callable[[dict[str, Any]], None],
    apply: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Log, check, wait out the latency, check again, apply. Every outcome lands in the log."""
    sim, vehicle = ctx.sim, ctx.vehicle
    trigger = (
        "closure-islocked" if fault_endpoint == "security" else "tractionbattery-stateofcharge"
    )
    entry = sim.store.command_add(vehicle["id"], action, vehicles.iso(sim.store.now()))
    try:
        _vehicle_side(ctx, fault_endpoint, static=False)
        check(vehicle)
    except ApiError as exc:
        sim.store.command_finish(entry, result=f"{exc.error_type}:{exc.code}", applied_at=None)
        if exc.error_type != "RATE_LIMIT":
            webhooks.emit(sim, vehicle, trigger=trigger, error=exc)
        raise
    delay = catalog.command_latency_s(
        vehicle["make"], vehicle["latency_profile"], vehicle["latency_ms"]
    )
    if delay:
        # Nothing is held across this wait: other requests, reads included, see the old state.
        sim.in_flight += 1
        sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
        try:
            await asyncio.sleep(delay)
        finally:
            sim.in_flight -= 1
        current = sim.store.get("vehicle", vehicle["id"])
        if current is None:  # reset while the command travelled
            sim.store.command_finish(entry, result="UPSTREAM:NO_RESPONSE", applied_at=None)
            raise ApiError("UPSTREAM", "NO_RESPONSE")
        vehicle = current
        vehicles.advance(vehicle, sim.store.now())
        try:
            check(vehicle)  # a door opened while the command travelled still stops a LOCK
        except ApiError as exc:
            sim.store.command_finish(entry, result=f"{exc.error_type}:{exc.code}", applied_at=None)
            webhooks.emit(sim, vehicle, trigger=trigger, error=exc)
            raise
    now = sim.store.now()
    apply(vehicle)
    vehicle["asleep"] = False
    vehicle["updated_at"] = now
    sim.store.put("vehicle", vehicle["id"], vehicle)
    sim.store.command_finish(entry, result="success", applied_at=vehicles.iso(now))
    if trigger == "tractionbattery-stateofcharge" and vehicle["battery_percent"] is None:
        trigger = "closure-islocked"
    webhooks.emit(sim, vehicle, trigger=trigger)
    return SUCCESS_ACTION


async def _batch(ctx: Ctx, data: Any, request_id: str) -> dict[str, Any]:
    items = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or len(items) > 50:
        raise validation("requests must be a list of 1 to 50 {path} objects", "requests")
    paths = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise validation("each request must be an object with a string path", "requests")
        paths.append(item["path"])
    # One trip to the car for the whole batch, then every answer from the same snapshot.
    delay = catalog.read_latency_s(ctx.vehicle["make"], ctx.vehicle["latency_profile"])
    if delay:
        await asyncio.sleep(delay)
    responses = []
    for path in paths:
        endpoint = path.strip("/") or "attributes"
        try:
            if endpoint not in READ_ENDPOINTS:
                raise ApiError("RESOURCE_NOT_FOUND", "PATH")
            body, headers = await _read(ctx, endpoint, wait=False)
            code = 200
            headers = {k.lower(): v for k, v in headers.items()}
        except ApiError as exc:
            code, body = exc.status, exc.body(request_id)
            headers = {"content-type": "application/json"}
            if exc.retry_after is not None:
                headers["retry-after"] = str(exc.retry_after)
        # Every item carries headers: both official SDKs crash without them (§2.4).
        responses.append({"path": path, "code": code, "body": body, "headers": headers})
    return {"responses": responses}


async def dispatch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    if not VERSION_RE.match(request.match_info["version"]):
        raise ApiError("RESOURCE_NOT_FOUND", "VERSION")
    parts = [p for p in request.match_info["tail"].split("/") if p]
    method = request.method
    if parts == ["user"] and method == "GET":
        grant = _authenticate(sim, request)
        _app_throttle(sim, grant)
        return json_response({"id": grant["user_id"]})
    if parts == ["vehicles"] and method == "GET":
        grant = _authenticate(sim, request)
        _app_throttle(sim, grant)
        limit, offset = _paging(request, default_limit=10, max_limit=50)
        ids = [i for i in grant["vehicle_ids"] if i not in grant["disconnected"]]
        return json_response(
            {
                "paging": {"count": len(ids), "offset": offset},
                "vehicles": ids[offset : offset + limit],
            }
        )
    if parts == ["management", "connections"] and method in ("GET", "DELETE"):
        return await management.connections(request, method)
    if len(parts) < 2 or parts[0] != "vehicles":
        raise ApiError("RESOURCE_NOT_FOUND", "PATH")
    if len(parts) == 4 and parts[2] == "webhooks" and method in ("POST", "DELETE"):
        return await _webhook_subscription(request, sim, parts[1], parts[3])
    endpoint = "/".join(parts[2:]) or "attributes"
    known = {
        "GET": READ_ENDPOINTS | {"permissions"},
        "POST": {"security", "batch", "charge", "charge/limit"},
        "DELETE": {"application"},
    }
    if endpoint not in known.get(method, set()):
        raise ApiError("RESOURCE_NOT_FOUND", "PATH")
    grant = _authenticate(sim, request)
    _app_throttle(sim, grant)
    imperial, unit = _unit_system(request)
    vehicle = _vehicle_for(sim, grant, parts[1])
    ctx = Ctx(sim, grant, vehicle, imperial)
    if method == "GET" and endpoint == "permissions":
        limit, offset = _paging(request, default_limit=25, max_limit=100)
        _vehicle_side(ctx, "permissions", static=True)
        names = grant["permissions"]
        return json_response(
            {
                "permissions": names[offset : offset + limit],
                "paging": {"count": len(names), "offset": offset},
            }
        )
    if method == "GET":
        body, headers = await _read(ctx, endpoint)
        return json_response(body, headers=headers)
    if method == "DELETE":
        _vehicle_side(ctx, "application", static=True)
        # The application loses the car, whichever Connect session granted it.
        for other in sim.store.all("grant"):
            if (
                other["client_id"] == grant["client_id"]
                and vehicle["id"] in other["vehicle_ids"]
                and vehicle["id"] not in other["disconnected"]
            ):
                other["disconnected"] = [*other["disconnected"], vehicle["id"]]
                sim.store.put("grant", other["id"], other)
        return json_response({"status": "success"})
    data = await json_body(request)
    if endpoint == "batch":
        _vehicle_side_batch_fault(ctx)
        result = await _batch(ctx, data, request["request_id"])
        return json_response(result, headers={"SC-Unit-System": unit})
    if endpoint == "charge":
        return json_response(await _charge(ctx, data))
    if endpoint == "charge/limit":
        return json_response(await _charge_limit(ctx, data))
    return json_response(await _security(ctx, data))


async def _webhook_subscription(
    request: web.Request, sim: Sim, vehicle_id: str, webhook_id: str
) -> web.Response:
    """Subscribe with the owner's access token; unsubscribe with the management token."""
    if request.method == "DELETE":
        return json_response(webhooks.unsubscribe(sim, request, vehicle_id, webhook_id))
    grant = _authenticate(sim, request)
    _app_throttle(sim, grant)
    vehicle = _vehicle_for(sim, grant, vehicle_id)
    return json_response(webhooks.subscribe(sim, grant, vehicle, webhook_id))


def _vehicle_side_batch_fault(ctx: Ctx) -> None:
    """A fault injected on "batch" fails the whole call; sub-requests have their own faults."""
    vehicle = ctx.vehicle
    for fault in vehicle["faults"]:
        if fault["remaining"] > 0 and fault["endpoint"] == "batch":
            fault["remaining"] -= 1
            vehicle["faults"] = [f for f in vehicle["faults"] if f["remaining"] > 0]
            ctx.sim.store.put("vehicle", vehicle["id"], vehicle)
            raise ApiError(
                fault["type"],
                fault["code"],
                status=fault["status"],
                retry_after=fault["retry_after"],
            )


def setup_routes(app: web.Application) -> None:
    app.router.add_route("*", r"/{version:v[^/]*}{tail:(/.*)?}", dispatch)
