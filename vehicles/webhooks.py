"""The vehicle cloud's webhook receiver: Smartcar's VERIFY challenge and signed events.

Smartcar signs each delivery with HMAC-SHA256 of the raw body, keyed by the application's
management token (SC-Signature, hex). VERIFY challenges are not signed: they are answered with
the HMAC of the challenge, with the same key. Anyone can send a VERIFY, so the answer is a
signing oracle: we answer only a challenge shaped like Smartcar's (a short token of letters,
digits and a few punctuation marks, never braces or spaces), which can never be an event body,
since an event must be a JSON object. The answer itself must stay HMAC(token, challenge), as
that is what Smartcar checks.

Events update the car's last known status. Deliveries are at-least-once, so the event id is
stored and a second delivery changes nothing; meta.deliveredAt is required, must be recent (an
old one is a replay) and not ahead of our clock beyond a small skew. Bodies are capped in size
before they are read. An event never confirms a command by itself: a reported lock state only
prompts the car's own status read, which does.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from vehicles import commands
from vehicles.models import (
    ConnectionStatus,
    VehicleConnection,
    VehicleStatus,
    WebhookEvent,
)

logger = logging.getLogger(__name__)

# Smartcar's challenges are random tokens (the docs show "<random-string>"; ids are UUIDs, the
# simulator sends 32 hex digits). Tokens of these characters, hex, UUIDs and base64(url) alike,
# and v3's VERIFY (the same data.challenge) fit; a JSON object, which needs "{", never does.
CHALLENGE_SHAPE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")


def sign(secret: str, message: bytes) -> str:
    """Smartcar's hash_challenge / SC-Signature: hex HMAC-SHA256 keyed by the secret."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


def _delivered_at(payload: dict[str, Any]) -> datetime.datetime | None:
    """meta.deliveredAt: epoch milliseconds, or an ISO 8601 time (as in one of Smartcar's VERIFY
    examples); None when missing or unreadable."""
    meta = payload.get("meta")
    value = meta.get("deliveredAt") if isinstance(meta, dict) else None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
        if isinstance(value, str):
            parsed = parse_datetime(value)
            return parsed if parsed is not None and parsed.tzinfo is not None else None
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _delivery_time_refusal(payload: dict[str, Any]) -> JsonResponse | None:
    delivered = _delivered_at(payload)
    if delivered is None:
        return _error(400, "bad_time", "The event has no usable meta.deliveredAt.")
    now = timezone.now()
    if now - delivered > datetime.timedelta(seconds=settings.SMARTCAR_WEBHOOK_MAX_AGE):
        return _error(400, "stale", "The delivery is too old; refusing a replay.")
    # Ahead of our clock by more than the skew: a recorded body kept for a later replay.
    if delivered - now > datetime.timedelta(seconds=settings.SMARTCAR_WEBHOOK_CLOCK_SKEW):
        return _error(400, "bad_time", "The delivery time is in the future.")
    return None


def _read_capped_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is larger than SMARTCAR_WEBHOOK_MAX_BYTES. Never reads more
    than the cap plus one byte, whatever the sender declares."""
    cap = settings.SMARTCAR_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > cap:
        return None
    body = request.read(cap + 1)
    return None if len(body) > cap else body


def _verify_answer(secret: str, payload: dict[str, Any]) -> JsonResponse:
    data = payload.get("data")
    challenge = data.get("challenge") if isinstance(data, dict) else None
    if not isinstance(challenge, str) or not CHALLENGE_SHAPE.fullmatch(challenge):
        return _error(400, "bad_request", "VERIFY without a challenge of the expected shape.")
    return JsonResponse({"challenge": sign(secret, challenge.encode())})


@csrf_exempt  # a server-to-server call, authenticated by its signature instead
@require_POST
def smartcar_webhook(request: HttpRequest) -> HttpResponse:
    secret = settings.SMARTCAR_WEBHOOK_SECRET
    if not secret:
        return _error(404, "not_found", "Webhooks are not configured.")
    body = _read_capped_body(request)
    if body is None:
        return _error(413, "too_large", "The body is larger than a webhook event can be.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "bad_request", "The body is not JSON.")
    if not isinstance(payload, dict):
        # Also what keeps a VERIFY answer from ever signing an event: no challenge we answer
        # (CHALLENGE_SHAPE) is a JSON object.
        return _error(400, "bad_request", "The body is not a JSON object.")

    if payload.get("eventType") == "VERIFY":
        return _verify_answer(secret, payload)

    # As bytes: compare_digest refuses str with non-ASCII characters, which a forger may send.
    signature = request.headers.get("SC-Signature", "").encode(errors="replace")
    # compare_digest: the time taken must not reveal how much of a forged signature matched.
    if not hmac.compare_digest(sign(secret, body).encode(), signature):
        return _error(401, "bad_signature", "The signature does not match the body.")
    event_id = payload.get("eventId")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
        return _error(400, "bad_request", "The event has no eventId.")
    if refusal := _delivery_time_refusal(payload):
        return refusal
    event_receive(payload=payload, event_id=event_id)
    return JsonResponse({"status": "ok"})


@transaction.atomic
def event_receive(*, payload: dict[str, Any], event_id: str) -> None:
    """Record and apply together: an event is either both stored and applied, or neither."""
    if event_record(payload=payload, event_id=event_id):
        event_apply(payload=payload)


def event_record(*, payload: dict[str, Any], event_id: str) -> bool:
    """Store the event; False when this event id was seen before (a retry or a replay)."""
    try:
        with transaction.atomic():  # a savepoint: the duplicate must not spoil the outer block
            WebhookEvent.objects.create(
                event_id=event_id,
                event_type=str(payload.get("eventType", ""))[:32],
                vehicle_id=str(payload.get("vehicleId", ""))[:64],
                payload=payload,
            )
    except IntegrityError:
        return False
    return True


def _signals(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data") or {}
    signals = data.get("signals") if isinstance(data, dict) else None
    values: dict[str, Any] = {}
    for signal in signals if isinstance(signals, list) else []:
        if isinstance(signal, dict) and isinstance(signal.get("body"), dict):
            values[str(signal.get("code"))] = signal["body"].get("value")
    return values


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def event_apply(*, payload: dict[str, Any]) -> None:
    """Fold a VEHICLE_STATE / VEHICLE_ERROR event into the car's last known status."""
    vehicle_id = payload.get("vehicleId")
    connection = (
        VehicleConnection.objects.filter(vehicle_id=vehicle_id)
        .exclude(status=ConnectionStatus.DISCONNECTED)
        .first()
    )
    if connection is None:
        logger.info("webhook for unknown vehicle %s ignored", vehicle_id)
        return
    status, _ = VehicleStatus.objects.select_for_update().get_or_create(car_id=connection.car_id)
    if payload.get("eventType") == "VEHICLE_ERROR":
        errors = (payload.get("data") or {}).get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        status.last_error = str(first.get("suggestedUserMessage") or first.get("code") or "")[:255]
        status.save(update_fields=["last_error"])
        return
    signals = _signals(payload)
    is_locked = signals.get("closure-islocked")
    if isinstance(is_locked, bool):
        status.is_locked = is_locked  # shown as the last known state until a read says more
        # Never a confirmation by itself (an end lock would stop escalating on a claim): the
        # car's own status read decides, prompted now if a command waits for this state.
        commands.vehicle_commands_request_confirmation(
            car_id=connection.car_id, is_locked=is_locked
        )
    location = signals.get("location-preciselocation")
    if isinstance(location, dict):
        status.latitude = _as_float(location.get("latitude"))
        status.longitude = _as_float(location.get("longitude"))
    if (odometer := _as_float(signals.get("odometer-traveleddistance"))) is not None:
        status.odometer_km = odometer
    if (charge := _as_float(signals.get("tractionbattery-stateofcharge"))) is not None:
        status.battery_percent = charge
    status.data_age = timezone.now()
    status.save()
