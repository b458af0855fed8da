"""Webhooks (reference §4): VERIFY challenge, signed VEHICLE_STATE / VEHICLE_ERROR deliveries.

Bodies are compact JSON with non-ASCII left as is, byte-identical to JSON.stringify, so both the
Python SDK (HMAC over the raw body) and the Node SDK (HMAC over JSON.stringify of the parsed
body) verify SC-Signature. Deliveries run as background tasks, never inside a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web

from simulator import vehicles
from simulator.app import SIM_KEY, Sim, json_body, json_response
from simulator.errors import ApiError, error_body, validation

log = logging.getLogger("simulator.webhooks")
TIMEOUT_S = 15
DELIVERY_LOG_LIMIT = 1000


def retry_delays() -> list[float]:
    """Seconds before each retry: Smartcar's 25, 50, 100 unless SIMULATOR_WEBHOOK_RETRY_DELAYS says."""
    raw = os.environ.get("SIMULATOR_WEBHOOK_RETRY_DELAYS", "25,50,100")
    return [float(x) for x in raw.split(",") if x.strip()]


def signature(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _meta(webhook: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4.0",
        "webhookId": webhook["id"],
        "webhookName": webhook["name"],
        "deliveryId": str(uuid.uuid4()),
        "deliveredAt": int(time.time() * 1000),
    }


class Deliveries:
    """The HTTP client, the background tasks and a log of attempts, per simulator process."""

    def __init__(self) -> None:
        self.http: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.log: deque[dict[str, Any]] = deque(maxlen=DELIVERY_LOG_LIMIT)

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        assert self.http is not None  # noqa: S101 - started with the app
        try:
            async with self.http.post(url, data=body, headers=headers) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return 0, str(exc).encode()


def _deliveries(sim: Sim) -> Deliveries:
    found = sim.extras.get("deliveries")
    if not isinstance(found, Deliveries):
        found = sim.extras["deliveries"] = Deliveries()
    return found


async def verify(sim: Sim, webhook: dict[str, Any], amt: str) -> bool:
    """Send the VERIFY challenge; the callback must answer {"challenge": HMAC(amt, challenge)}."""
    # A plain token, as Smartcar sends: receivers rightly answer nothing else, since the answer
    # is the HMAC that signs events and must never be one of an event body.
    challenge = secrets.token_hex(16)
    payload = {
        "eventId": str(uuid.uuid4()),
        "eventType": "VERIFY",
        "data": {"challenge": challenge},
        "meta": _meta(webhook),
    }
    status, raw = await _deliveries(sim).post(
        webhook["callback_url"],
        _dumps(payload),
        {"Content-Type": "application/json", "User-Agent": "Smartcar/simulator"},
    )
    try:
        answer = json.loads(raw) if 200 <= status < 300 else None
    except ValueError:
        answer = None
    expected = signature(amt, challenge.encode())
    ok = isinstance(answer, dict) and answer.get("challenge") == expected
    _deliveries(sim).log.append(
        {
            "webhook_id": webhook["id"],
            "event_type": "VERIFY",
            "attempt": 1,
            "status": status,
            "ok": ok,
        }
    )
    return ok


def _send_later(sim: Sim, webhook: dict[str, Any], amt: str, payload: dict[str, Any]) -> None:
    deliveries = _deliveries(sim)
    if deliveries.http is None:
        return
    task = asyncio.get_running_loop().create_task(_deliver(sim, webhook, amt, payload))
    deliveries.tasks.add(task)
    task.add_done_callback(deliveries.tasks.discard)


async def _deliver(sim: Sim, webhook: dict[str, Any], amt: str, payload: dict[str, Any]) -> None:
    """At least once: the first attempt now, then the retries; eventId stays the same."""
    deliveries = _deliveries(sim)
    waits = [0.0, *retry_delays()]
    for attempt, wait in enumerate(waits, start=1):
        if wait:
            await asyncio.sleep(wait)
        payload["meta"] = _meta(webhook)
        body = _dumps(payload)
        headers = {
            "Content-Type": "application/json",
            "SC-Signature": signature(amt, body),
            "User-Agent": "Smartcar/simulator",
        }
        status, _ = await deliveries.post(webhook["callback_url"], body, headers)
        ok = 200 <= status < 300
        deliveries.log.append(
            {
                "webhook_id": webhook["id"],
                "event_id": payload["eventId"],
                "event_type": payload["eventType"],
                "vehicle_id": payload.get("vehicleId"),
                "attempt": attempt,
                "status": status,
                "ok": ok,
            }
        )
        if ok:
            return
    log.info(
        "webhook %s: event %s dropped after %d attempts",
        webhook["id"],
        payload["eventId"],
        len(waits),
    )


def _signal(
    code: str, name: str, group: str, value: Any, unit: str | None, now_ms: int
) -> dict[str, Any]:
    body: dict[str, Any] = {"value": value}
    if unit:
        body["unit"] = unit
    return {
        "code": code,
        "name": name,
        "group": group,
        "body": body,
        "meta": {"oemUpdatedAt": now_ms, "fetchedAt": now_ms},
    }


def _vehicle_part(vehicle: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": vehicle["id"],
        "make": vehicle["make"],
        "model": vehicle["model"],
        "year": vehicle["year"],
        "mode": "TEST",
        "powertrainType": vehicle["powertrain"],
    }


def emit(sim: Sim, vehicle: dict[str, Any], *, trigger: str, error: ApiError | None = None) -> None:
    """Queue VEHICLE_STATE (or VEHICLE_ERROR) for every webhook subscribed to this car."""
    subscriptions = [s for s in sim.store.all("subscription") if s["vehicle_id"] == vehicle["id"]]
    if not subscriptions:
        return
    now_ms = int(sim.store.now() * 1000)
    signals = [
        _signal("closure-islocked", "IsLocked", "Closure", vehicle["is_locked"], None, now_ms),
        _signal(
            "location-preciselocation",
            "PreciseLocation",
            "Location",
            {"latitude": vehicle["latitude"], "longitude": vehicle["longitude"]},
            None,
            now_ms,
        ),
        _signal(
            "odometer-traveleddistance",
            "TraveledDistance",
            "Odometer",
            round(vehicle["odometer_km"], 2),
            "km",
            now_ms,
        ),
    ]
    if vehicle["battery_percent"] is not None:
        signals.append(
            _signal(
                "tractionbattery-stateofcharge",
                "StateOfCharge",
                "TractionBattery",
                round(vehicle["battery_percent"], 2),
                "percent",
                now_ms,
            )
        )
    for sub in subscriptions:
        webhook = sim.store.get("webhook", sub["webhook_id"])
        client = sim.store.get("client", webhook["client_id"]) if webhook else None
        if webhook is None or client is None:
            continue
        data: dict[str, Any] = {"user": {"id": sub["user_id"]}, "vehicle": _vehicle_part(vehicle)}
        if error is None:
            event_type = "VEHICLE_STATE"
            trigger_signal = next(s for s in signals if s["code"] == trigger)
            data["triggers"] = [{k: trigger_signal[k] for k in ("code", "name", "group")}]
            data["signals"] = signals
        else:
            event_type = "VEHICLE_ERROR"
            envelope = error_body(error.error_type, error.code, request_id="")
            data["errors"] = [
                {
                    "type": error.error_type,
                    "code": error.code,
                    "state": "ERROR",
                    "description": envelope["description"],
                    "suggestedUserMessage": envelope.get("suggestedUserMessage"),
                    "docURL": envelope["docURL"],
                    "resolution": envelope["resolution"],
                    "signals": [{"code": trigger, "name": "IsLocked", "group": "Closure"}],
                }
            ]
        payload = {
            "eventId": str(uuid.uuid4()),
            "eventType": event_type,
            "vehicleId": vehicle["id"],
            "data": data,
        }
        _send_later(sim, webhook, client["management_token"], payload)


# -- HTTP ----------------------------------------------------------------------------------------
async def webhooks_create(request: web.Request) -> web.Response:
    """POST /_sim/webhooks {client_id, callback_url, name?, id?}: create, then verify it."""
    sim = request.app[SIM_KEY]
    data = await json_body(request)
    if not isinstance(data, dict):
        raise validation("the body must be a JSON object")
    client = (
        sim.store.get("client", data.get("client_id"))
        if isinstance(data.get("client_id"), str)
        else None
    )
    if client is None:
        raise validation("client_id must name a registered client", "client_id")
    url = data.get("callback_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise validation("callback_url must be an http(s) URL", "callback_url")
    name = data.get("name", "Simulator webhook")
    if not isinstance(name, str):
        raise validation("name must be a string", "name")
    webhook_id = data.get("id") or str(uuid.uuid4())
    if not isinstance(webhook_id, str) or not vehicles.is_uuid(webhook_id):
        raise validation("id must be a UUID", "id")
    webhook = {
        "id": webhook_id.lower(),
        "client_id": client["client_id"],
        "callback_url": url,
        "name": name,
        "verified": False,
    }
    sim.store.put("webhook", webhook["id"], webhook)
    webhook["verified"] = await verify(sim, webhook, client["management_token"])
    sim.store.put("webhook", webhook["id"], webhook)
    return json_response(webhook, status=201)


async def webhook_deliveries(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    webhook_id = request.match_info["webhook_id"].lower()
    if sim.store.get("webhook", webhook_id) is None:
        raise ApiError(
            "RESOURCE_NOT_FOUND", "PATH", description=f"No webhook with id {webhook_id}."
        )
    rows = [d for d in _deliveries(sim).log if d["webhook_id"] == webhook_id]
    return json_response({"deliveries": rows})


def subscribe(
    sim: Sim, grant: dict[str, Any], vehicle: dict[str, Any], webhook_id: str
) -> dict[str, Any]:
    webhook = sim.store.get("webhook", webhook_id.lower())
    if webhook is None or webhook["client_id"] != grant["client_id"]:
        raise ApiError("RESOURCE_NOT_FOUND", "PATH", description="Unknown webhook.")
    key = f"{webhook['id']}:{vehicle['id']}"
    sim.store.put(
        "subscription",
        key,
        {"webhook_id": webhook["id"], "vehicle_id": vehicle["id"], "user_id": grant["user_id"]},
    )
    return {"webhookId": webhook["id"], "vehicleId": vehicle["id"]}


def unsubscribe(sim: Sim, request: web.Request, vehicle_id: str, webhook_id: str) -> dict[str, Any]:
    """DELETE .../webhooks/{id} with `Authorization: Bearer <application management token>`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    webhook = sim.store.get("webhook", webhook_id.lower())
    if webhook is None:
        raise ApiError("AUTHENTICATION")  # no webhook: no token can be right for it
    client = sim.store.get("client", webhook["client_id"])
    if (
        scheme.lower() != "bearer"
        or client is None
        or not secrets.compare_digest(client["management_token"], token.strip())
    ):
        raise ApiError("AUTHENTICATION")
    sim.store.delete("subscription", f"{webhook['id']}:{vehicle_id.lower()}")
    return {"status": "success"}


def setup(app: web.Application) -> None:
    deliveries = _deliveries(app[SIM_KEY])

    async def _start(_app: web.Application) -> None:
        await deliveries.start()

    async def _stop(_app: web.Application) -> None:
        await deliveries.stop()

    app.on_startup.append(_start)
    app.on_cleanup.insert(0, _stop)
    app.router.add_post("/_sim/webhooks", webhooks_create)
    app.router.add_get("/_sim/webhooks/{webhook_id}/deliveries", webhook_deliveries)
