"""Input that passes CarForm, for tests to spoil one field at a time; stored image reading."""

from __future__ import annotations

import io
from typing import Any

from django.db.models.fields.files import FieldFile
from PIL import Image


def car_form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "make": "TESLA",
        "model": "Model 3",
        "year": "2022",
        "licence_plate": "ab-12 cd",
        "vin": "",
        "seats": "5",
        "fuel_type": "electric",
        "transmission": "automatic",
        "description": "Quiet and quick.",
        "rules": "No smoking.",
        "address": "Coolsingel 40",
        "city": "Rotterdam",
        "latitude": "51.922500",
        "longitude": "4.479170",
        "time_zone": "Europe/Amsterdam",
        "hourly_price": "12.50",
        "daily_price": "79.00",
        "min_notice_hours": "2",
        "min_duration_hours": "1",
        "max_duration_days": "7",
        "instant_book": "on",
    }
    data.update(overrides)
    return data


def stored_bytes(field: FieldFile) -> bytes:
    with field.open("rb") as file:  # closed here: pytest turns a leaked file into an error
        return file.read()


def stored_image(field: FieldFile) -> Image.Image:
    return Image.open(io.BytesIO(stored_bytes(field)))
