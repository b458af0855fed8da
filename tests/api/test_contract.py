"""The API's contract against what the models store: every value a row can hold serialises
through every output schema that shows it, so no stored row can make a page of the API answer
500 (an append-only log would keep it broken for good)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models

from bookings.models import Booking, BookingEvent
from carshare.api import api
from keys.models import AuditEntry, DigitalKey, StartUnlock
from vehicles.models import Car, VehicleCommand, VehicleConnection

# Output schemas (OpenAPI component names) that show a model's fields under the same names.
OUTPUT_MODELS: dict[str, type[models.Model]] = {
    "CarOut": Car,
    "ConnectionOut": VehicleConnection,
    "BookingOut": Booking,
    "BookingDetailOut": Booking,
    "EventOut": BookingEvent,
    "KeyOut": DigitalKey,
    "AuditOut": AuditEntry,
    "CommandOut": VehicleCommand,
    "StartOut": StartUnlock,
}
# Output schemas that are not a model's row: pages, nested summaries, computed answers.
NOT_MODEL_ROWS = {
    "CarPage", "PhotoOut", "PhotosOut", "OwnerOut", "BookingPage", "BookingCarOut", "PersonOut",
    "BusyOut", "AvailabilityOut", "KeyPage", "KeyCarOut", "HolderOut", "AuditPage",
    "CommandEnvelope", "CommandErrorOut", "StatusOut", "ErrorOut", "ErrorBody", "Error", "ShareOut",
    "AtCarOut", "FallbackOut",
}  # fmt: skip
# Stored values an output schema never meets, because the selector behind it leaves them out.
NEVER_SHOWN = {
    ("ConnectionOut", "status"): {"disconnected"},  # car_live_connection: live ones only
}


def _document() -> dict[str, Any]:
    return api.get_openapi_schema()


def _refs(node: Any) -> set[str]:
    """Component names a part of the document refers to, directly or through others."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _response_schemas(document: dict[str, Any]) -> set[str]:
    components = document["components"]["schemas"]
    pending = {
        name
        for path in document["paths"].values()
        for operation in path.values()
        for name in _refs(operation.get("responses", {}))
    }
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending |= _refs(components[name]) - seen
    return seen


def _allowed_values(prop: dict[str, Any]) -> set[Any] | None:
    """The values a property's schema allows, or None when it allows any string."""
    if "enum" in prop:
        return set(prop["enum"])
    if "const" in prop:
        return {prop["const"]}
    if "anyOf" in prop:
        values: set[Any] = set()
        for option in prop["anyOf"]:
            if option.get("type") == "null":
                values.add(None)
                continue
            allowed = _allowed_values(option)
            if allowed is None:
                return None
            values |= allowed
        return values
    return None


def _choice_fields(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.get_fields() if getattr(field, "choices", None)]


def test_every_output_schema_is_classified():
    # A new output schema must say whether it shows a model's fields, so the test below
    # checks its choices too.
    unclassified = _response_schemas(_document()) - set(OUTPUT_MODELS) - NOT_MODEL_ROWS
    assert not unclassified


@pytest.mark.parametrize("schema_name", sorted(OUTPUT_MODELS))
def test_every_stored_choice_is_allowed_by_the_output_schema(schema_name):
    document = _document()
    properties = document["components"]["schemas"][schema_name]["properties"]
    model = OUTPUT_MODELS[schema_name]
    checked = 0
    for field in _choice_fields(model):
        if field.name not in properties:
            continue  # not shown by this schema
        allowed = _allowed_values(properties[field.name])
        assert allowed is not None, f"{schema_name}.{field.name} states no enum"
        stored = {value for value, _label in field.flatchoices}
        if field.blank:
            # A blank choice field is shown as null ("not cancelled"), never as "".
            stored = {value for value in stored if value != ""} | {None}
            assert None in allowed, f"{schema_name}.{field.name} must allow null"
        missing = stored - allowed - NEVER_SHOWN.get((schema_name, field.name), set())
        assert not missing, f"{schema_name}.{field.name} refuses stored values {missing}"
        checked += 1
    if _choice_fields(model):
        assert checked, f"{schema_name} shows no choice field of {model.__name__}"


# --- Through HTTP -------------------------------------------------------------------------


def test_audit_log_shows_the_owners_lock_now(client, connected_car, owner_auth):
    lock = client.post(f"/api/v1/cars/{connected_car.public_id}/lock", headers=owner_auth)
    assert lock.status_code == 202, lock.content
    entry = AuditEntry.objects.get(car=connected_car)
    assert entry.via == "owner"  # stored so, for good: the log is append-only

    response = client.get(f"/api/v1/cars/{connected_car.public_id}/audit", headers=owner_auth)

    assert response.status_code == 200, response.content
    (shown,) = response.json()["results"]
    assert (shown["action"], shown["via"], shown["command_id"]) == (
        "lock",
        "owner",
        lock.json()["command"]["id"],
    )
    # The log is the car's history of commands: each entry says where its command stands.
    assert (shown["command_status"], shown["command_error"]) == ("queued", "")


def test_audit_entries_without_a_command_have_no_command_status(client, car, owner, owner_auth):
    AuditEntry.objects.create(car=car, actor=owner, action="share", allowed=True, code="ok")

    response = client.get(f"/api/v1/cars/{car.public_id}/audit", headers=owner_auth)

    (shown,) = response.json()["results"]
    assert (shown["command_status"], shown["command_error"]) == (None, "")


@pytest.mark.parametrize(
    "via", [value for value, _ in AuditEntry._meta.get_field("via").flatchoices]
)
def test_audit_log_shows_every_via(client, car, owner, owner_auth, via):
    AuditEntry.objects.create(car=car, actor=owner, action="lock", allowed=True, code="ok", via=via)

    response = client.get(f"/api/v1/cars/{car.public_id}/audit", headers=owner_auth)

    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["via"] == via
