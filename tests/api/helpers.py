"""Valid API input for tests to spoil one field at a time, and the error envelope's shape."""

from __future__ import annotations

from typing import Any

CARS = "/api/v1/cars"


def car_url(public_id: object) -> str:
    return f"{CARS}/{public_id}"


def car_payload(**overrides: Any) -> dict[str, Any]:
    """A JSON body POST /api/v1/cars accepts; only the required fields unless overridden."""
    data: dict[str, Any] = {
        "make": "TOYOTA",
        "model": "Yaris",
        "year": 2020,
        "licence_plate": "xy-123-z",
        "seats": 5,
        "fuel_type": "hybrid",
        "transmission": "automatic",
        "address": "Coolsingel 40",
        "city": "Rotterdam",
        "latitude": 51.9225,
        "longitude": "4.479170",
        "hourly_price": "9.50",
        "daily_price": 60,
    }
    data.update(overrides)
    return data


def assert_error(response: Any, status: int, code: str, *fields: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code, naming these fields."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    for field in fields:
        assert field in error.get("fields", {}), error
    return error


def assert_envelope(response: Any) -> None:
    """Whatever went wrong, the body is the error envelope."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert set(error) <= {"code", "message", "fields"}
    for messages in error.get("fields", {}).values():
        assert messages
        assert all(isinstance(message, str) for message in messages)
