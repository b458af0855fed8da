"""Smartcar API v2.0 (real Smartcar or the local simulator) behind provider.VehicleCloud.

Hand-rolled on requests rather than the official SDK: the SDK opens a fresh connection per call
with a fixed 310 s timeout, and we want a pooled session shared by the many threads of the
`vehicle` worker and our own (connect, read) timeouts. Wire details follow
../shared/reference/smartcar-api.md (§1 Connect and tokens, §2 the API, §3 errors, §7.8).
"""

from __future__ import annotations

import datetime
import email.utils
import os
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import requests
from django.conf import settings
from django.utils import timezone
from requests.adapters import HTTPAdapter

from vehicles.cloud import provider
from vehicles.cloud.provider import (
    CONNECT_SCOPES,
    Attributes,
    CommandAck,
    Level,
    Location,
    LockStatus,
    Meta,
    Odometer,
    Tokens,
)

API_VERSION = "2.0"
REFRESH_TOKEN_LIFETIME = datetime.timedelta(days=60)  # Smartcar does not send it (§1.4)
USER_AGENT = "carshare/1.0 (python-requests)"
# Many `vehicle` worker threads share one session; each may hold a connection for seconds
# while a car answers, so the pool keeps as many connections as a vehicle worker has threads
# (Procfile: -c 500) instead of urllib3's default of 10: a smaller pool throws connections away
# in a wave of trip starts, and every one of those calls pays for a new TCP connection.
POOL_MAXSIZE = 500
PAGE_SIZE = 50  # the largest page /vehicles accepts

_session_lock = threading.Lock()
_sessions: dict[int, requests.Session] = {}


def shared_session() -> requests.Session:
    """One pooled session per process: a new session per call would throw its pool away.

    Keyed by pid because a forked child (Celery prefork) must not reuse its parent's sockets.
    """
    pid = os.getpid()
    session = _sessions.get(pid)
    if session is None:
        with _session_lock:
            session = _sessions.get(pid)
            if session is None:
                session = requests.Session()
                # No automatic retries: whether a LOCK may be sent again is the caller's call.
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                session.trust_env = False  # no proxies or .netrc credentials picked up by surprise
                _sessions.clear()
                _sessions[pid] = session
    return session


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _meta(response: requests.Response) -> Meta:
    return Meta(
        request_id=response.headers.get("SC-Request-Id", ""),
        data_age=_parse_time(response.headers.get("SC-Data-Age")),
        fetched_at=_parse_time(response.headers.get("SC-Fetched-At")),
    )


def _retry_after(response: requests.Response) -> int | None:
    """Retry-After in seconds; HTTP also allows a date there."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return int(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0, int((when - timezone.now()).total_seconds()))


# v2 error types (§3.2) and the exception each becomes.
_BY_TYPE: dict[str, type[provider.VehicleCloudError]] = {
    "RATE_LIMIT": provider.RateLimited,
    "VEHICLE_STATE": provider.VehicleStateError,
    "AUTHENTICATION": provider.AuthenticationFailed,
    "PERMISSION": provider.PermissionDenied,
    "COMPATIBILITY": provider.NotCapable,
    "CONNECTED_SERVICES_ACCOUNT": provider.AccountProblem,
    "SERVER": provider.TransientError,
    "UPSTREAM": provider.TransientError,
}


def _by_status(status: int) -> type[provider.VehicleCloudError]:
    """For answers without a known v2 type (plain text from a proxy, legacy bodies)."""
    if status == 429:
        return provider.RateLimited
    if status == 401:
        return provider.AuthenticationFailed
    if status == 403:
        return provider.PermissionDenied
    if status == 501:
        return provider.NotCapable
    # A gateway in front of the cloud answering 500/502/503/504 is as passing as SERVER.
    if status in (500, 502, 503, 504):
        return provider.TransientError
    return provider.InvalidRequest


def error_from_response(response: requests.Response) -> provider.VehicleCloudError:
    """Every error shape of reference §3.4, as a typed exception keeping Smartcar's facts."""
    status = response.status_code
    common: dict[str, Any] = {
        "status": status,
        "retry_after": _retry_after(response),
        "request_id": response.headers.get("SC-Request-Id", ""),
    }
    content_type = response.headers.get("Content-Type", "")
    body: Any = None
    if "json" in content_type:
        try:
            body = response.json()
        except ValueError:
            body = None
    if not isinstance(body, dict):
        # 1. Not JSON: the body is the message. (Also broken JSON, and JSON that is no object.)
        text = response.text.strip()[:500] or response.reason or f"HTTP {status}"
        kind = "SDK_ERROR" if body is not None else ""
        return _by_status(status)(text, type=kind, **common)

    if "type" in body:  # 4. The v2 envelope (§3.1)
        error_type = str(body.get("type") or "")
        resolution = body.get("resolution")
        if isinstance(resolution, dict):
            resolution = resolution.get("type")
        if isinstance(body.get("statusCode"), int):
            common["status"] = body["statusCode"]  # the SDK's choice; equal to the HTTP status
        common["request_id"] = str(body.get("requestId") or common["request_id"])
        cls = _BY_TYPE.get(error_type) or _by_status(status)
        return cls(
            str(body.get("description") or error_type),
            type=error_type,
            code=body.get("code"),
            user_message=str(body.get("suggestedUserMessage") or ""),
            resolution=resolution if isinstance(resolution, str) else None,
            **common,
        )

    if "error" in body and ("message" in body or "statusCode" in body):  # 2. legacy v1
        if isinstance(body.get("statusCode"), int):
            common["status"] = body["statusCode"]
        common["request_id"] = str(body.get("requestId") or common["request_id"])
        return _by_status(common["status"])(
            str(body.get("message") or body["error"]),
            type=str(body["error"]),
            code=body.get("code"),
            **common,
        )

    if "error" in body:  # 3. OAuth, from the token endpoint
        error = str(body["error"])
        description = str(body.get("error_description") or error)
        if status >= 500 or error in ("server_error", "temporarily_unavailable"):
            # The endpoint itself failed: the refresh token was not judged, so try again later.
            return provider.TransientError(description, type=error, **common)
        if status == 429:
            return provider.RateLimited(description, type=error, **common)
        return provider.OAuthError(description, type=error, **common)

    # 5. JSON we do not recognise.
    return _by_status(status)(str(body)[:500], type="SDK_ERROR", **common)


def _malformed(what: str, response: requests.Response) -> provider.InvalidRequest:
    """A 2xx whose body lacks what the reference promises: report it, never KeyError."""
    return provider.InvalidRequest(
        f"Unexpected answer from the vehicle cloud: {what}",
        type="SDK_ERROR",
        status=response.status_code,
        request_id=response.headers.get("SC-Request-Id", ""),
    )


def _percent(fraction: Any) -> float | None:
    return None if fraction is None else float(fraction) * 100  # the API sends 0 to 1


def _doors_open(doors: Any) -> bool | None:
    """Any door OPEN → True; every door reported CLOSED → False; no doors or UNKNOWN → None."""
    if not isinstance(doors, list) or not doors:
        return None
    statuses = [door.get("status") for door in doors if isinstance(door, dict)]
    if "OPEN" in statuses:
        return True
    if statuses and all(status == "CLOSED" for status in statuses):
        return False
    return None


@dataclass
class SmartcarClient:
    """provider.VehicleCloud over Smartcar's HTTP API. Build it with from_settings()."""

    client_id: str
    client_secret: str
    redirect_uri: str
    mode: str  # simulator | live | test | simulated
    api_url: str  # .../v2.0
    token_url: str  # .../oauth/token
    connect_url: str  # .../oauth/authorize
    timeout: tuple[float, float]  # (connect, read) seconds
    session: requests.Session = field(default_factory=shared_session, repr=False)

    @classmethod
    def from_settings(cls) -> SmartcarClient:
        """Read settings on each call (cheap, and tests change them); the session is shared."""
        return cls(
            client_id=settings.SMARTCAR_CLIENT_ID,
            client_secret=settings.SMARTCAR_CLIENT_SECRET,
            redirect_uri=settings.SMARTCAR_REDIRECT_URI,
            mode=settings.SMARTCAR_MODE,
            api_url=settings.SMARTCAR_API_ORIGIN.rstrip("/") + f"/v{API_VERSION}",
            token_url=settings.SMARTCAR_AUTH_ORIGIN.rstrip("/") + "/oauth/token",
            connect_url=settings.SMARTCAR_CONNECT_ORIGIN.rstrip("/") + "/oauth/authorize",
            timeout=(settings.VEHICLE_CLOUD_CONNECT_TIMEOUT, settings.VEHICLE_CLOUD_READ_TIMEOUT),
        )

    # --- HTTP ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> tuple[Any, requests.Response]:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
            raise provider.TransientError(
                f"No answer from the vehicle cloud in time ({method} {url})", type="TIMEOUT"
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise provider.TransientError(
                f"Could not reach the vehicle cloud ({method} {url})", type="NETWORK"
            ) from exc
        if not response.ok:
            raise error_from_response(response)
        try:
            return response.json(), response
        except ValueError as exc:
            raise _malformed("not JSON", response) from exc

    def _vehicle(
        self,
        method: str,
        access_token: str,
        vehicle_id: str,
        path: str = "",
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], requests.Response]:
        # quote(): a vehicle id is an opaque string from outside and must stay one path segment.
        url = f"{self.api_url}/vehicles/{quote(vehicle_id, safe='')}{path}"
        headers = {"Authorization": f"Bearer {access_token}", "SC-Unit-System": "metric"}
        body, response = self._send(method, url, headers=headers, json=json, params=params)
        if not isinstance(body, dict):
            raise _malformed("not an object", response)
        return body, response

    def _token(self, form: dict[str, str]) -> Tokens:
        asked_at = timezone.now()  # expiry counted from the request: errs on the early side
        body, response = self._send(
            "POST", self.token_url, data=form, auth=(self.client_id, self.client_secret)
        )
        try:
            return Tokens(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                access_expires_at=asked_at + datetime.timedelta(seconds=int(body["expires_in"])),
                refresh_expires_at=asked_at + REFRESH_TOKEN_LIFETIME,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed("token answer", response) from exc

    # --- Connect and tokens -------------------------------------------------------------

    def authorize_url(
        self, *, state: str, make: str | None = None, vin: str | None = None, force: bool = False
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(CONNECT_SCOPES),
            "state": state,
            # Our simulator shows only the cars created through its control API, as live does.
            "mode": self.mode if self.mode in ("test", "simulated") else "live",
            "approval_prompt": "force" if force else "auto",
        }
        if make:
            params["make"] = make
        if vin:
            # Connect then offers only this car: the owner cannot grant a different one.
            params["single_select"] = "true"
            params["single_select_vin"] = vin
        return f"{self.connect_url}?{urlencode(params, quote_via=quote)}"

    def exchange_code(self, *, code: str) -> Tokens:
        return self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        )

    def refresh(self, *, refresh_token: str) -> Tokens:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    # --- Vehicles -----------------------------------------------------------------------

    def vehicle_ids(self, *, access_token: str) -> list[str]:
        ids: list[str] = []
        headers = {"Authorization": f"Bearer {access_token}"}
        while True:
            body, response = self._send(
                "GET",
                f"{self.api_url}/vehicles",
                headers=headers,
                params={"limit": PAGE_SIZE, "offset": len(ids)},
            )
            try:
                page = [str(i) for i in body["vehicles"]]
                total = int(body["paging"]["count"])
            except (KeyError, TypeError, ValueError) as exc:
                raise _malformed("vehicle list", response) from exc
            ids.extend(page)
            if not page or len(ids) >= total:
                return ids

    def attributes(self, *, access_token: str, vehicle_id: str) -> Attributes:
        body, response = self._vehicle("GET", access_token, vehicle_id)
        try:
            return Attributes(
                vehicle_id=str(body["id"]),
                make=str(body["make"]),
                model=str(body["model"]),
                year=int(body["year"]),
                meta=_meta(response),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed("attributes", response) from exc

    def vin(self, *, access_token: str, vehicle_id: str) -> str:
        body, response = self._vehicle("GET", access_token, vehicle_id, "/vin")
        if not isinstance(body.get("vin"), str):
            raise _malformed("vin", response)
        return body["vin"]

    def permissions(self, *, access_token: str, vehicle_id: str) -> list[str]:
        names: list[str] = []
        while True:
            body, response = self._vehicle(
                "GET",
                access_token,
                vehicle_id,
                "/permissions",
                params={"limit": PAGE_SIZE, "offset": len(names)},
            )
            try:
                page = [str(name) for name in body["permissions"]]
                total = int(body["paging"]["count"])
            except (KeyError, TypeError, ValueError) as exc:
                raise _malformed("permissions", response) from exc
            names.extend(page)
            if not page or len(names) >= total:
                return names

    def _command(self, access_token: str, vehicle_id: str, action: str) -> CommandAck:
        body, response = self._vehicle(
            "POST", access_token, vehicle_id, "/security", json={"action": action}
        )
        return CommandAck(message=str(body.get("message", "")), meta=_meta(response))

    def lock(self, *, access_token: str, vehicle_id: str) -> CommandAck:
        return self._command(access_token, vehicle_id, "LOCK")

    def unlock(self, *, access_token: str, vehicle_id: str) -> CommandAck:
        return self._command(access_token, vehicle_id, "UNLOCK")

    def lock_status(self, *, access_token: str, vehicle_id: str) -> LockStatus:
        body, response = self._vehicle("GET", access_token, vehicle_id, "/security")
        if not isinstance(body.get("isLocked"), bool):
            raise _malformed("lock status", response)
        return LockStatus(
            is_locked=body["isLocked"],
            doors_open=_doors_open(body.get("doors")),
            meta=_meta(response),
        )

    def location(self, *, access_token: str, vehicle_id: str) -> Location:
        body, response = self._vehicle("GET", access_token, vehicle_id, "/location")
        try:
            return Location(
                latitude=float(body["latitude"]),
                longitude=float(body["longitude"]),
                meta=_meta(response),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed("location", response) from exc

    def odometer(self, *, access_token: str, vehicle_id: str) -> Odometer:
        body, response = self._vehicle("GET", access_token, vehicle_id, "/odometer")
        try:
            return Odometer(distance_km=float(body["distance"]), meta=_meta(response))
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed("odometer", response) from exc

    def _level(self, access_token: str, vehicle_id: str, path: str) -> Level:
        body, response = self._vehicle("GET", access_token, vehicle_id, path)
        try:
            range_km = body.get("range")  # EU cars may report null (§2.2)
            return Level(
                percent=_percent(body.get("percentRemaining")),
                range_km=None if range_km is None else float(range_km),
                meta=_meta(response),
            )
        except (TypeError, ValueError) as exc:
            raise _malformed(path, response) from exc

    def fuel(self, *, access_token: str, vehicle_id: str) -> Level:
        return self._level(access_token, vehicle_id, "/fuel")

    def battery(self, *, access_token: str, vehicle_id: str) -> Level:
        return self._level(access_token, vehicle_id, "/battery")

    def disconnect(self, *, access_token: str, vehicle_id: str) -> None:
        self._vehicle("DELETE", access_token, vehicle_id, "/application")
