"""The aiohttp application: shared state, the error middleware and the route table."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections import OrderedDict
from typing import Any

from aiohttp import web

from simulator.errors import ApiError, validation
from simulator.store import Store

log = logging.getLogger("simulator")


class OAuthError(Exception):
    """Token-endpoint errors use the OAuth shape {"error", "error_description"}."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


class Sim:
    """Everything one simulator process knows; handlers reach it as request.app[SIM_KEY]."""

    def __init__(self, store: Store, env_clients: list[dict[str, Any]] | None = None) -> None:
        self.store = store
        self.env_clients = env_clients or []
        self.in_flight = 0  # commands waiting out their latency right now
        self.max_in_flight = 0
        self.buckets: dict[str, tuple[float, float]] = {}  # vehicle id -> (tokens, at)
        self.connect_sessions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.extras: dict[str, object] = {}  # per-process helpers, e.g. webhook deliveries
        # Profile for cars created without one: instant unless the environment says otherwise.
        self.default_latency_profile = os.environ.get("SIMULATOR_LATENCY_PROFILE") or "instant"

    def account_ensure(self, email: str) -> dict[str, Any]:
        """The connected-services account for an email, created on first use."""
        account = self.store.get("account", email)
        if account is None:
            account = {"email": email, "user_id": str(uuid.uuid4())}
            self.store.put("account", email, account)
        return account

    def register_env_clients(self) -> None:
        from simulator.control import client_upsert

        for data in self.env_clients:
            client_upsert(self, data)


SIM_KEY: web.AppKey[Sim] = web.AppKey("sim", Sim)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or a 400 VALIDATION error for anything that is not JSON."""
    raw = await request.read()
    if not raw.strip():
        raise validation("the request body must be JSON")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise validation("the request body is not valid JSON") from exc


def error_response(error: ApiError, request_id: str) -> web.Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error.body(request_id), status=error.status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    request["request_id"] = request_id
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc, request_id)
    except OAuthError as exc:
        response = json_response(
            {"error": exc.error, "error_description": exc.description}, status=exc.status
        )
        response.headers["Cache-Control"] = "no-store"
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            error = ApiError("RESOURCE_NOT_FOUND", "PATH")
        elif exc.status == 413:
            error = ApiError("VALIDATION", None, status=413, description="Request body too large.")
        else:
            error = ApiError("VALIDATION", None, status=exc.status if exc.status >= 400 else 400)
        response = error_response(error, request_id)
    except Exception:
        # Never a traceback on the wire: the reference's SERVER error, details in our log only.
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(ApiError("SERVER", "INTERNAL"), request_id)
    response.headers["SC-Request-Id"] = request_id
    return response


def load_env_clients() -> list[dict[str, Any]]:
    raw = os.environ.get("SIMULATOR_CLIENTS", "").strip()
    if not raw:
        return []
    data = json.loads(raw)
    if isinstance(data, dict):
        data = [data]
    return list(data)


def create_app(store: Store, env_clients: list[dict[str, Any]] | None = None) -> web.Application:
    from simulator import api, connect_views, control, oauth, webhooks

    app = web.Application(middlewares=[errors_middleware], client_max_size=1024 * 1024)
    sim = Sim(store, env_clients)
    sim.register_env_clients()
    app[SIM_KEY] = sim
    control.setup_routes(app)
    connect_views.setup_routes(app)
    oauth.setup_routes(app)
    api.setup_routes(app)
    webhooks.setup(app)

    async def _close(_app: web.Application) -> None:
        store.close()

    app.on_cleanup.append(_close)
    return app
