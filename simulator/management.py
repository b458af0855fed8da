"""Management API v2 (reference §2.5): list and delete an application's vehicle connections."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

from aiohttp import web

from simulator import vehicles
from simulator.app import SIM_KEY, Sim, json_response
from simulator.errors import ApiError, validation


def _client_for_amt(sim: Sim, header: str) -> dict[str, Any]:
    """Authorization: Basic base64("default:" + application management token)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise ApiError("AUTHENTICATION")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError("AUTHENTICATION") from exc
    user, _, token = decoded.partition(":")
    for client in sim.store.all("client"):
        if (
            user == "default"
            and token
            and secrets.compare_digest(client["management_token"], token)
        ):
            return client
    raise ApiError("AUTHENTICATION")


def _connections(sim: Sim, client_id: str) -> list[dict[str, Any]]:
    """One connection per (user, vehicle) the app may reach, oldest grant first."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    grants = sorted(
        (g for g in sim.store.all("grant") if g["client_id"] == client_id),
        key=lambda g: g["created_at"],
    )
    for grant in grants:
        for vehicle_id in grant["vehicle_ids"]:
            if vehicle_id in grant["disconnected"]:
                continue
            key = (grant["user_id"], vehicle_id)
            found.setdefault(
                key,
                {
                    "userId": grant["user_id"],
                    "vehicleId": vehicle_id,
                    "connectedAt": vehicles.iso(grant["created_at"]),
                },
            )
    return list(found.values())


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    user_id = request.query.get("user_id") or None
    vehicle_id = request.query.get("vehicle_id") or None
    for name, value in (("user_id", user_id), ("vehicle_id", vehicle_id)):
        if value is not None and not vehicles.is_uuid(value):
            raise validation(f"{name} must be a UUID", name)
    return (
        user_id.lower() if user_id else None,
        vehicle_id.lower() if vehicle_id else None,
    )


async def connections(request: web.Request, method: str) -> web.Response:
    sim = request.app[SIM_KEY]
    client = _client_for_amt(sim, request.headers.get("Authorization", ""))
    user_id, vehicle_id = _filters(request)
    rows = [
        c
        for c in _connections(sim, client["client_id"])
        if (user_id is None or c["userId"] == user_id)
        and (vehicle_id is None or c["vehicleId"] == vehicle_id)
    ]
    if method == "GET":
        raw_limit = request.query.get("limit", "10")
        if not re.fullmatch(r"\d+", raw_limit) or not 1 <= int(raw_limit) <= 100:
            raise validation("limit must be an integer from 1 to 100", "limit")
        cursor = request.query.get("cursor") or "0"
        if not re.fullmatch(r"\d+", cursor):
            raise validation("cursor is not valid", "cursor")
        start, limit = int(cursor), int(raw_limit)
        page = rows[start : start + limit]
        following = str(start + limit) if start + limit < len(rows) else None
        return json_response({"connections": page, "paging": {"cursor": following}})
    if (user_id is None) == (vehicle_id is None):
        raise validation("give either user_id or vehicle_id", "user_id")
    for grant in sim.store.all("grant"):
        if grant["client_id"] != client["client_id"]:
            continue
        if user_id is not None and grant["user_id"] != user_id:
            continue
        gone = [
            v
            for v in grant["vehicle_ids"]
            if (vehicle_id is None or v == vehicle_id) and v not in grant["disconnected"]
        ]
        if gone:
            grant["disconnected"] = [*grant["disconnected"], *gone]
            sim.store.put("grant", grant["id"], grant)
    return json_response({"connections": rows})
