"""The cars part of the JSON API: search and detail for everyone, listing writes for owners.

Input goes through the page forms (CarSearchForm, CarForm), so the API and the pages share every
rule; the schemas below only describe the wire format for the OpenAPI document and turn JSON
into Python types. Form errors are raised as Django's ValidationError and the API's handler
(carshare/api.py) renders them as the error envelope. Writes need X-Session-Token: that is the
API's default auth, and reads opt out of it with auth=None.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, cast
from uuid import UUID

from allauth.headless.contrib.ninja.security import x_session_token_auth
from django import forms as django_forms
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.core.validators import (
    DecimalValidator,
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
)
from django.db import models
from django.forms import BaseForm
from django.http import HttpRequest
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile
from ninja.errors import AuthenticationError
from pydantic import BaseModel, StrictBool, field_validator

from accounts.models import User
from carshare import apikit, times
from carshare.apikit import ApiRequest, QueryParams, limit_field, offset_field
from vehicles import forms, selectors, services
from vehicles.makes import SUPPORTED_MAKES
from vehicles.models import (
    DEFAULT_TIME_ZONE,
    MIN_YEAR,
    Car,
    CarPhoto,
    FuelType,
    Transmission,
)

router = Router(tags=["cars"])

MAKES = [code for code, _name in SUPPORTED_MAKES]
CURRENCY = "EUR"

# --- Output ---------------------------------------------------------------------------------


class Out(BaseModel):
    """Base of the output schemas: a plain pydantic model. Every view here hands them dicts
    (_car_out), so ninja's Schema, which wraps each object it validates in a getter that reads
    ORM attributes, only added work: about 1.3 ms of CPU for a page of 20 cars
    (bench/README.md). The OpenAPI document is the same."""


class PhotoOut(Out):
    url: str = Field(description="Absolute URL of the photo (JPEG, at most 1600 px a side).")
    thumbnail_url: str = Field(description="Absolute URL of a 480 by 320 JPEG crop.")


class OwnerOut(Out):
    name: str = Field(description="The owner's first name; never an email address.")


class ConnectionOut(Out):
    provider: str = Field(description="The vehicle cloud, e.g. smartcar.")
    vehicle_id: str = Field(description="The vehicle's id at the vehicle cloud.")
    status: Literal["healthy", "unhealthy"] = Field(
        description="healthy, or unhealthy: the owner must reconnect (Connect) on the car's page."
    )


class CarOut(Out):
    id: UUID = Field(description="The car's public id, as used in every URL.")
    make: str = Field(
        description="Make code, one of the supported makes.", json_schema_extra={"enum": [*MAKES]}
    )
    make_name: str = Field(description="The make as people write it.")
    model: str
    year: int
    licence_plate: str | None = Field(
        description="Normalised: capitals and digits only. Shown to the owner only, null otherwise."
    )
    vin: str | None = Field(
        description="Vehicle identification number: shown to the owner only, null otherwise."
    )
    seats: int
    fuel_type: str = Field(json_schema_extra={"enum": list(FuelType.values)})
    transmission: str = Field(json_schema_extra={"enum": list(Transmission.values)})
    description: str
    rules: str
    address: str = Field(description="Pickup address.")
    city: str
    latitude: float
    longitude: float
    time_zone: str = Field(description="IANA time zone of the pickup location.")
    currency: Literal["EUR"] = Field(description="Currency of every price.")
    hourly_price: str = Field(description="Price per hour, two decimals.", examples=["8.50"])
    daily_price: str = Field(description="Price per day, two decimals.", examples=["55.00"])
    min_notice_hours: int
    min_duration_hours: int
    max_duration_days: int
    instant_book: bool = Field(description="Bookings are confirmed without the owner.")
    unlock_at_start: bool = Field(description="carshare unlocks the car when a trip starts.")
    early_access_minutes: int = Field(
        description="The renter's key works this many minutes before the trip starts."
    )
    is_listed: bool = Field(description="False once the owner unlisted the car.")
    photos: list[PhotoOut]
    owner: OwnerOut
    distance_km: float | None = Field(
        None, description="Distance from the searched lat/lng; null when none was given."
    )
    url: str = Field(description="Absolute URL of the car's page.")
    connected: bool = Field(
        description="The car is connected to the vehicle cloud with a healthy connection: "
        "carshare can lock and unlock it, so it can be booked."
    )
    connection: ConnectionOut | None = Field(
        description="The owner's view of the car's connection; null when it has none, and "
        "always null for anyone else."
    )


class CarPage(Out):
    count: int = Field(description="How many cars match, over all pages.")
    next: str | None = Field(description="URL of the next page, or null on the last one.")
    previous: str | None = Field(description="URL of the previous page, or null on the first.")
    results: list[CarOut]


class PhotosOut(Out):
    photos: list[PhotoOut] = Field(description="The photos just added, in order.")


def _absolute(request: HttpRequest, url: str) -> str:
    return request.build_absolute_uri(url)


def _photo_out(request: HttpRequest, photo: CarPhoto) -> dict[str, str]:
    return {
        "url": _absolute(request, photo.image.url),
        "thumbnail_url": _absolute(request, photo.thumbnail.url),
    }


def _car_out(request: HttpRequest, car: Car, *, viewer: User | AnonymousUser) -> dict[str, Any]:
    distance: float | None = getattr(car, "distance_km", None)
    is_owner = viewer.is_authenticated and car.owner_id == viewer.pk
    return {
        "id": car.public_id,
        "make": car.make,
        "make_name": car.make_name,
        "model": car.model,
        "year": car.year,
        # Plate and VIN identify the car (and, with the pickup address, where it sleeps): the
        # pages show them to the owner only, and so does the API. Renters get the plate with
        # their booking.
        "licence_plate": car.licence_plate if is_owner else None,
        "vin": car.vin if is_owner else None,
        "seats": car.seats,
        "fuel_type": car.fuel_type,
        "transmission": car.transmission,
        "description": car.description,
        "rules": car.rules,
        "address": car.address,
        "city": car.city,
        "latitude": float(car.latitude),
        "longitude": float(car.longitude),
        "time_zone": car.time_zone,
        "currency": CURRENCY,
        "hourly_price": f"{car.hourly_price:.2f}",
        "daily_price": f"{car.daily_price:.2f}",
        "min_notice_hours": car.min_notice_hours,
        "min_duration_hours": car.min_duration_hours,
        "max_duration_days": car.max_duration_days,
        "instant_book": car.instant_book,
        "unlock_at_start": car.unlock_at_start,
        "early_access_minutes": car.early_access_minutes,
        "is_listed": car.is_listed,
        "photos": [_photo_out(request, photo) for photo in car.photos.all()],
        "owner": {"name": car.owner.name.split(" ")[0] if car.owner.name else ""},
        "distance_km": round(distance, 2) if distance is not None else None,
        "url": _absolute(request, car.get_absolute_url()),
        "connected": selectors.car_is_connected(car),
        "connection": _connection_out(car) if is_owner else None,
    }


def _connection_out(car: Car) -> dict[str, str] | None:
    connection = selectors.car_live_connection(car)
    if connection is None:
        return None
    return {
        "provider": connection.provider,
        "vehicle_id": connection.vehicle_id,
        "status": connection.status,
    }


# --- Input ----------------------------------------------------------------------------------


_EMPTY = {"type": "string", "enum": [""]}  # "not given", as the browse page sends it


def _search_field(name: str, description: str) -> Any:
    """A CarSearchForm parameter, read as a string for the form to parse (empty: any), stated
    in the document with the form's own bounds, so the two cannot drift apart."""
    field = forms.CarSearchForm.base_fields[name]
    stated: dict[str, Any]
    if isinstance(field, django_forms.DateTimeField):
        stated = {"type": "string", "format": "date-time"}
    elif isinstance(field, django_forms.DecimalField | django_forms.IntegerField):
        is_int = isinstance(field, django_forms.IntegerField)
        stated = {"type": "integer" if is_int else "number"}
        largest = getattr(field, "max_digits", None)
        places = getattr(field, "decimal_places", None)
        # A bound may be a callable in Django; the search form's are plain numbers.
        if field.min_value is not None and not callable(field.min_value):
            stated["minimum"] = int(field.min_value) if is_int else float(field.min_value)
        if field.max_value is not None and not callable(field.max_value):
            stated["maximum"] = int(field.max_value) if is_int else float(field.max_value)
        elif largest is not None and places is not None:
            stated["maximum"] = float(10 ** (largest - places) - Decimal(10) ** -places)
    elif isinstance(field, django_forms.CharField) and field.max_length is not None:
        return Field("", description=description, max_length=field.max_length)
    else:
        raise TypeError(f"State how {name} is read.")

    def state(schema: dict[str, Any]) -> None:
        schema.pop("type", None)
        schema["anyOf"] = [stated, _EMPTY]

    return Field("", description=description, json_schema_extra=state)


# The checkbox's "on" (what the browse page sends), true / 1 for "instant-book cars only";
# false / 0 or empty for "any". Anything else is refused, not read as a yes.
QueryBool = Literal["", "true", "false", "on", "1", "0"]


class CarSearchQuery(QueryParams):
    """The browse page's query parameters, read as strings and parsed by CarSearchForm, so a
    page URL's filters work against the API as they are: an empty or missing value means
    "any". (The page's own `page` is refused: the API pages with limit and offset. Its dates
    need an offset here: the browse page reads a wall-clock time in Amsterdam, the API guesses
    no zone.)"""

    city: str = _search_field("city", "Cars in this city (as the listing names it).")
    make: str = Field("", json_schema_extra={"enum": ["", *MAKES]})
    lat: str = _search_field("lat", "Latitude of the search centre; needs lng.")
    lng: str = _search_field("lng", "Longitude of the search centre; needs lat.")
    radius_km: str = _search_field("radius_km", "Only cars this close to lat/lng.")
    min_price: str = _search_field("min_price", "Lowest price per hour (EUR), 2 decimals.")
    max_price: str = _search_field(
        "max_price", "Highest price per hour (EUR), 2 decimals; not below min_price."
    )
    seats: str = _search_field("seats", "At least this many seats.")
    fuel_type: str = Field("", json_schema_extra={"enum": ["", *FuelType.values]})
    transmission: str = Field("", json_schema_extra={"enum": ["", *Transmission.values]})
    instant_book: QueryBool = Field(
        "", description="true (or on, 1): instant-book cars only; false (0) or empty: any."
    )
    available_from: str = _search_field(
        "available_from",
        "Only cars free from this moment until available_to (both or neither): "
        "ISO 8601 with a UTC offset (or Z), e.g. 2026-12-01T10:00:00+01:00; a time without "
        "an offset is refused.",
    )
    available_to: str = _search_field(
        "available_to",
        f"End of the free period (exclusive), after available_from and at most "
        f"{forms.MAX_SEARCH_DAYS} days later; same format.",
    )
    sort: str = Field(
        "",
        description="Default: distance when lat/lng are given, else price.",
        json_schema_extra={"enum": ["", *(value for value, _label in forms.CarSearchForm.SORTS)]},
    )
    limit: int = limit_field()
    offset: int = offset_field("Cars to skip.")

    @field_validator("available_from", "available_to")
    @classmethod
    def _with_an_offset(cls, value: str) -> str:
        # As every time the API takes (carshare/times.py): a naive one is refused rather than
        # read in a zone the client may not have meant. The form gets the instant in UTC.
        moment = times.query_aware_utc(value)
        return moment.isoformat() if moment is not None else ""


def _car_rules(name: str) -> Any:
    """What Car's field `name` allows, for the document, read off the same validators the
    listing form runs (and the database's bounds), so the two cannot drift apart. Only
    stated, not enforced here: CarForm checks, with the messages the listing page shows."""
    # Only ever asked about Car's own columns, never a relation.
    field = cast(models.Field, Car._meta.get_field(name))
    numbers: dict[str, Any] = {}
    texts: dict[str, Any] = {}
    lows = [v.limit_value for v in field.validators if isinstance(v, MinValueValidator)]
    highs = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
    for validator in field.validators:
        if isinstance(validator, DecimalValidator) and validator.max_digits is not None:
            places = validator.decimal_places or 0
            highs.append(10 ** (validator.max_digits - places) - Decimal(10) ** -places)
        elif isinstance(validator, RegexValidator):
            # RegexValidator compiles its regex in __init__; the stubs keep the str it accepts.
            pattern = validator.regex.pattern  # type: ignore[union-attr]
            texts["pattern"] = f"^$|{pattern}" if field.blank else pattern
    as_number = int if isinstance(field, models.IntegerField) else float
    if lows:
        numbers["minimum"] = as_number(max(lows))
    if highs:
        numbers["maximum"] = as_number(min(highs))
    if isinstance(field, models.CharField | models.TextField):
        if field.max_length is not None:
            texts["maxLength"] = field.max_length
        if not field.blank:
            texts["minLength"] = 1
        if field.choices:
            texts["enum"] = [value for value, _label in field.flatchoices]
    if name == "time_zone":  # a free CharField in the model; the form offers tzdata's zones
        texts["enum"] = forms.TIME_ZONES

    def state(schema: dict[str, Any]) -> None:
        branches = schema.get("anyOf", [schema])
        stated = []
        for branch in branches:
            kind = branch.get("type")
            if kind in ("number", "integer"):
                branch.update(numbers)
            elif kind == "string" and numbers:
                continue  # a decimal may also come as a string; the document offers numbers
            elif kind == "string":
                branch.update(texts)
            stated.append(branch)
        if "anyOf" in schema:
            del schema["anyOf"]
            if len(stated) == 1:
                schema.update(stated[0])
            else:
                schema["anyOf"] = stated

    return state


class CarIn(Schema):
    """A car listing as JSON. Fields not named here (id, is_listed, photos, ...) are ignored;
    CarForm applies the rules, as on the listing page. Besides each field's own bounds:
    daily_price is not below hourly_price, max_duration_days (in days) is no shorter than
    min_duration_hours, and a licence plate no other listed car has."""

    make: str = Field(json_schema_extra=_car_rules("make"))
    model: str = Field(json_schema_extra=_car_rules("model"))
    year: int = Field(
        description=f"Model year, {MIN_YEAR} or newer.", json_schema_extra=_car_rules("year")
    )
    licence_plate: str = Field(
        description="As on the car: 2 to 12 letters and digits once spaces and dashes are "
        "dropped; no other listed car may have it.",
        json_schema_extra=_car_rules("licence_plate"),
    )
    vin: str = Field(
        "",
        description="Optional: 17 characters, no I, O or Q.",
        json_schema_extra=_car_rules("vin"),
    )
    seats: int = Field(json_schema_extra=_car_rules("seats"))
    fuel_type: str = Field(json_schema_extra=_car_rules("fuel_type"))
    transmission: str = Field(json_schema_extra=_car_rules("transmission"))
    description: str = Field("", json_schema_extra=_car_rules("description"))
    rules: str = Field("", json_schema_extra=_car_rules("rules"))
    address: str = Field(description="Pickup address.", json_schema_extra=_car_rules("address"))
    city: str = Field(json_schema_extra=_car_rules("city"))
    latitude: Decimal = Field(
        description="At most 6 decimals.", json_schema_extra=_car_rules("latitude")
    )
    longitude: Decimal = Field(
        description="At most 6 decimals.", json_schema_extra=_car_rules("longitude")
    )
    time_zone: str = Field(
        DEFAULT_TIME_ZONE, description="IANA time zone.", json_schema_extra=_car_rules("time_zone")
    )
    hourly_price: Decimal = Field(
        description="EUR, at most 2 decimals, above 0.",
        json_schema_extra=_car_rules("hourly_price"),
    )
    daily_price: Decimal = Field(
        description="EUR, at most 2 decimals, not below hourly_price.",
        json_schema_extra=_car_rules("daily_price"),
    )
    min_notice_hours: int = Field(1, json_schema_extra=_car_rules("min_notice_hours"))
    min_duration_hours: int = Field(1, json_schema_extra=_car_rules("min_duration_hours"))
    max_duration_days: int = Field(
        14,
        description="No shorter than min_duration_hours.",
        json_schema_extra=_car_rules("max_duration_days"),
    )
    instant_book: StrictBool = False
    unlock_at_start: StrictBool = Field(True, description="Unlock the car when a trip starts.")
    early_access_minutes: int = Field(
        0,
        description="The renter's key works this long before the start.",
        json_schema_extra=_car_rules("early_access_minutes"),
    )


class CarPatch(Schema):
    """Any of CarIn's fields, with its rules; those left out keep their values, and every rule
    (the ones between fields too) applies to the result. null clears an optional text field
    (vin, description, rules) and is refused for a required one."""

    make: str | None = Field(None, json_schema_extra=_car_rules("make"))
    model: str | None = Field(None, json_schema_extra=_car_rules("model"))
    year: int | None = Field(None, json_schema_extra=_car_rules("year"))
    licence_plate: str | None = Field(None, json_schema_extra=_car_rules("licence_plate"))
    vin: str | None = Field(None, json_schema_extra=_car_rules("vin"))
    seats: int | None = Field(None, json_schema_extra=_car_rules("seats"))
    fuel_type: str | None = Field(None, json_schema_extra=_car_rules("fuel_type"))
    transmission: str | None = Field(None, json_schema_extra=_car_rules("transmission"))
    description: str | None = Field(None, json_schema_extra=_car_rules("description"))
    rules: str | None = Field(None, json_schema_extra=_car_rules("rules"))
    address: str | None = Field(None, json_schema_extra=_car_rules("address"))
    city: str | None = Field(None, json_schema_extra=_car_rules("city"))
    latitude: Decimal | None = Field(None, json_schema_extra=_car_rules("latitude"))
    longitude: Decimal | None = Field(None, json_schema_extra=_car_rules("longitude"))
    time_zone: str | None = Field(None, json_schema_extra=_car_rules("time_zone"))
    hourly_price: Decimal | None = Field(None, json_schema_extra=_car_rules("hourly_price"))
    daily_price: Decimal | None = Field(None, json_schema_extra=_car_rules("daily_price"))
    min_notice_hours: int | None = Field(None, json_schema_extra=_car_rules("min_notice_hours"))
    min_duration_hours: int | None = Field(None, json_schema_extra=_car_rules("min_duration_hours"))
    max_duration_days: int | None = Field(None, json_schema_extra=_car_rules("max_duration_days"))
    instant_book: StrictBool | None = None
    unlock_at_start: StrictBool | None = None
    early_access_minutes: int | None = Field(
        None, json_schema_extra=_car_rules("early_access_minutes")
    )


def optional_viewer(request: HttpRequest) -> User | AnonymousUser:
    """The token's user on public reads, anonymous without one; a bad token is refused rather
    than silently read as anonymous, so an owner never mistakes a 404 for a missing car."""
    if not request.headers.get("X-Session-Token"):
        return AnonymousUser()
    user: User | None = x_session_token_auth(request)
    if user is None:
        raise AuthenticationError()
    return user


def _invalid(form: BaseForm) -> ValidationError:
    return ValidationError(dict(form.errors.as_data()))


def _current_values(car: Car) -> dict[str, Any]:
    # The fallback is set on the car's page only: a PATCH keeps it as it is.
    values = {name: getattr(car, name) for name in forms.CarForm.Meta.fields}
    return values | {"fallback": selectors.car_fallback(car)}


# --- Endpoints ------------------------------------------------------------------------------


@router.get("/cars", response=CarPage, auth=None, summary="Search listed cars")
def car_list(request: HttpRequest, params: Query[CarSearchQuery]) -> dict[str, Any]:
    """Public cars (listed, connected to the vehicle cloud, of a make it can lock and unlock
    remotely) with the browse page's filters, a page at a time (limit/offset)."""
    viewer = optional_viewer(request)
    form = forms.CarSearchForm(data=params.model_dump(exclude={"limit", "offset"}))
    if not form.is_valid():
        raise _invalid(form)
    cars = selectors.cars_with_connection(
        selectors.cars_search(filters=form.cleaned_data).select_related("owner"),
        # One more query, and only when someone signed in might own some of these cars.
        live_connections=viewer.is_authenticated,
    )
    return apikit.page(
        request,
        cars,
        limit=params.limit,
        offset=params.offset,
        out=lambda page: [_car_out(request, car, viewer=viewer) for car in page],
    )


@router.get("/cars/{car_id}", response=CarOut, auth=None, summary="One car")
def car_detail(request: HttpRequest, car_id: UUID) -> dict[str, Any]:
    """A public car; any other (unlisted, not connected, ...) only for its owner (send
    X-Session-Token), and 404 for everyone else."""
    viewer = optional_viewer(request)
    car = selectors.car_for_viewer(user=viewer, public_id=car_id)
    return _car_out(request, car, viewer=viewer)


@router.post("/cars", response={201: CarOut}, summary="List a car")
def car_create(request: ApiRequest, payload: CarIn) -> Status[dict[str, Any]]:
    """List a new car for the signed-in user; add photos afterwards with POST .../photos."""
    form = forms.CarForm(data=payload.model_dump())
    if not form.is_valid():
        raise _invalid(form)
    car = services.car_create(owner=request.auth, data=form.cleaned_data)
    return Status(201, _car_out(request, car, viewer=request.auth))


@router.patch("/cars/{car_id}", response=CarOut, summary="Change a car")
def car_update(request: ApiRequest, car_id: UUID, payload: CarPatch) -> dict[str, Any]:
    """Change some fields of your car; the others keep their values, and every rule applies to
    the result."""
    car = selectors.car_for_owner(user=request.auth, public_id=car_id)
    changes = payload.model_dump(exclude_unset=True)
    form = forms.CarForm(instance=car, data=_current_values(car) | changes)
    if not form.is_valid():
        raise _invalid(form)
    car = services.car_update(car=car, data=form.cleaned_data)
    return _car_out(request, car, viewer=request.auth)


@router.delete("/cars/{car_id}", response={204: None}, summary="Unlist a car")
def car_unlist(request: ApiRequest, car_id: UUID) -> Status[None]:
    """Unlist your car: it leaves search and takes no bookings; the row and history stay."""
    car = selectors.car_for_owner(user=request.auth, public_id=car_id)
    services.car_unlist(car=car)
    return Status(204, None)


@router.post("/cars/{car_id}/photos", response={201: PhotosOut}, summary="Add photos")
def car_photos_add(
    request: ApiRequest, car_id: UUID, photos: File[list[UploadedFile]]
) -> Status[dict[str, Any]]:
    """Add photos (multipart/form-data, one or more `photos` parts): JPEG, PNG or WebP, up to
    8 MB and 40 megapixels each, 50 MB per request (413 `too_large` above), at most 10 per car
    (the defaults; a deployment may change them)."""
    car = selectors.car_for_owner(user=request.auth, public_id=car_id)
    # The whole CarForm on the stored values, so its photo rules (JPEG, PNG or WebP within the
    # pixel budget, 8 MB each, the cap per car) apply as on the edit page.
    form = forms.CarForm(instance=car, data=_current_values(car), files=request.FILES)
    if not form.is_valid():
        raise _invalid(form)
    added = services.car_photos_add(car=car, uploads=form.cleaned_data["photos"])
    return Status(201, {"photos": [_photo_out(request, photo) for photo in added]})
