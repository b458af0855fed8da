"""The vehicle cloud's webhook receiver: Smartcar's VERIFY challenge and signed events.

Smartcar signs each delivery with HMAC-SHA256 of the raw body, keyed by the application's
management token (SC-Signature, hex). VERIFY challenges are not signed: they are answered with
the HMAC of the challenge. Events update the car's last known status; deliveries are
at-least-once, so the event id is stored and a second delivery changes nothing. An event never
confirms a command by itself: a reported lock state only prompts the car's own status read,
which does.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
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


def sign(secret: str, message: bytes) -> str:
    """Smartcar's hash_challenge / SC-Signature: hex HMAC-SHA256 keyed by the secret."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _delivered_too_long_ago(payload: dict[str, Any]) -> bool:
    delivered_ms = (payload.get("meta") or {}).get("deliveredAt")
    if not isinstance(delivered_ms, int | float):
        return False  # older envelopes carry no time: the event id still guards replays
    delivered = datetime.datetime.fromtimestamp(delivered_ms / 1000, tz=datetime.UTC)
    return timezone.now() - delivered > datetime.timedelta(
        seconds=settings.SMARTCAR_WEBHOOK_MAX_AGE
    )


@csrf_exempt  # a server-to-server call, authenticated by its signature instead
@require_POST
def smartcar_webhook(request: HttpRequest) -> HttpResponse:
    secret = settings.SMARTCAR_WEBHOOK_SECRET
    if not secret:
        return _error(404, "not_found", "Webhooks are not configured.")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "bad_request", "The body is not JSON.")
    if not isinstance(payload, dict):
        return _error(400, "bad_request", "The body is not a JSON object.")

    if payload.get("eventType") == "VERIFY":
        challenge = (payload.get("data") or {}).get("challenge")
        if not isinstance(challenge, str) or not challenge:
            return _error(400, "bad_request", "VERIFY without a challenge.")
        return JsonResponse({"challenge": sign(secret, challenge.encode())})

    signature = request.headers.get("SC-Signature", "")
    # compare_digest: the time taken must not reveal how much of a forged signature matched.
    if not hmac.compare_digest(sign(secret, request.body), signature):
        return _error(401, "bad_signature", "The signature does not match the body.")
    event_id = payload.get("eventId")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
        return _error(400, "bad_request", "The event has no eventId.")
    if _delivered_too_long_ago(payload):
        return _error(400, "stale", "The delivery is too old; refusing a replay.")
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
