"""POST /oauth/token: authorization codes and refresh tokens (reference §1.4-§1.6)."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from typing import Any

from aiohttp import web

from simulator.app import SIM_KEY, OAuthError, Sim, json_response

ACCESS_TTL_S = 7200
REFRESH_TTL_S = 60 * 86_400
REFRESH_GRACE_S = 60


def _client_from_basic(sim: Sim, header: str) -> dict[str, Any]:
    scheme, _, encoded = header.partition(" ")
    bad = OAuthError(401, "invalid_client", "Invalid client credentials.")
    if scheme.lower() != "basic" or not encoded:
        raise bad
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise bad from exc
    client_id, sep, secret = decoded.partition(":")
    client = sim.store.get("client", client_id)
    if not sep or client is None or not secrets.compare_digest(client["client_secret"], secret):
        raise bad
    return client


def _issue(sim: Sim, grant_id: str) -> dict[str, Any]:
    now = sim.store.now()
    access, refresh = str(uuid.uuid4()), str(uuid.uuid4())
    sim.store.put("access", access, {"grant_id": grant_id, "expires_at": now + ACCESS_TTL_S})
    sim.store.put(
        "refresh",
        refresh,
        {"grant_id": grant_id, "expires_at": now + REFRESH_TTL_S, "used_at": None},
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_S,
        "refresh_token": refresh,
    }


async def token(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    client = _client_from_basic(sim, request.headers.get("Authorization", ""))
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise OAuthError(
            400, "invalid_request", "The request body must be application/x-www-form-urlencoded."
        )
    try:
        form = await request.post()
    except Exception as exc:  # any parsing failure of the body is the client's mistake
        raise OAuthError(400, "invalid_request", "The request body could not be parsed.") from exc
    grant_type = form.get("grant_type")
    now = sim.store.now()
    if grant_type == "authorization_code":
        code = str(form.get("code", ""))
        if not code:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code.")
        record = sim.store.get("code", code)
        if (
            record is None
            or record["used"]
            or record["expires_at"] <= now
            or record["client_id"] != client["client_id"]
        ):
            raise OAuthError(400, "invalid_grant", f"Invalid code: {code}.")
        redirect_uri = form.get("redirect_uri")
        # As in RFC 6749 §4.1.3: required, and equal, when Connect was given one.
        omitted_ok = redirect_uri is None and not record.get("redirect_uri_given", True)
        if redirect_uri != record["redirect_uri"] and not omitted_ok:
            raise OAuthError(400, "invalid_grant", f"Invalid redirect_uri: {redirect_uri}.")
        record["used"] = True
        sim.store.put("code", code, record)
        body = _issue(sim, record["grant_id"])
    elif grant_type == "refresh_token":
        value = str(form.get("refresh_token", ""))
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token.")
        record = sim.store.get("refresh", value)
        grant_row = sim.store.get("grant", record["grant_id"]) if record else None
        if (
            record is None
            or grant_row is None
            or grant_row["client_id"] != client["client_id"]
            or record["expires_at"] <= now
            # A used refresh token still works for a minute, so a retried request is safe.
            or (record["used_at"] is not None and now - record["used_at"] > REFRESH_GRACE_S)
        ):
            raise OAuthError(400, "invalid_grant", f"Invalid refresh_token: {value}.")
        if record["used_at"] is None:
            record["used_at"] = now
            sim.store.put("refresh", value, record)
        body = _issue(sim, record["grant_id"])
    elif not grant_type:
        raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type.")
    else:
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}.")
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/oauth/token", token)
