"""The OpenAPI document and the interactive docs, which must run under our CSP."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.staticfiles import finders

from tests.api.conftest import session_token
from tests.api.helpers import CARS, assert_error, car_payload
from vehicles.makes import MAKE_IDS
from vehicles.models import MIN_YEAR, Car, FuelType

CAR_FIELDS = {
    "id", "make", "make_name", "model", "year", "licence_plate", "vin", "seats", "fuel_type",
    "transmission", "description", "rules", "address", "city", "latitude", "longitude",
    "time_zone", "currency", "hourly_price", "daily_price", "min_notice_hours",
    "min_duration_hours", "max_duration_days", "instant_book", "unlock_at_start",
    "early_access_minutes", "is_listed", "photos", "owner",
    "distance_km", "url", "connected", "connection",
}  # fmt: skip


class Assets(HTMLParser):
    """The page's scripts and stylesheets."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        elif tag == "link":
            self.links.append(dict(attrs).get("href") or "")


def test_openapi_document_describes_the_cars_api(client, db):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert set(paths["/api/v1/cars"]) == {"get", "post"}
    assert set(paths["/api/v1/cars/{car_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/v1/cars/{car_id}/photos"]) == {"post"}
    components = schema["components"]
    assert set(components["schemas"]["CarOut"]["properties"]) == CAR_FIELDS
    assert components["securitySchemes"]["SessionToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Session-Token",
        "description": components["securitySchemes"]["SessionToken"]["description"],
    }
    assert "security" not in paths["/api/v1/cars"]["get"]  # public
    assert paths["/api/v1/cars"]["post"]["security"] == [{"SessionToken": []}]
    for path in paths.values():
        for operation in path.values():
            error = operation["responses"]["4XX"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
    assert "error" in components["schemas"]["Error"]["properties"]


def test_openapi_document_lists_the_keys_api(client, db):
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert set(paths["/api/v1/keys"]) == {"get"}
    assert set(paths["/api/v1/keys/{key_id}"]) == {"get"}
    for action in ("unlock", "lock", "share", "revoke"):
        assert set(paths[f"/api/v1/keys/{{key_id}}/{action}"]) == {"post"}
    assert set(paths["/api/v1/cars/{car_id}/service-keys"]) == {"post"}
    assert set(paths["/api/v1/cars/{car_id}/keys"]) == {"get"}
    assert set(paths["/api/v1/cars/{car_id}/audit"]) == {"get"}
    assert set(paths["/api/v1/cars/{car_id}/unlock"]) == {"post"}
    unlock = paths["/api/v1/keys/{key_id}/unlock"]["post"]
    assert {"202", "409", "429"} <= set(unlock["responses"])
    assert unlock["security"] == [{"SessionToken": []}]
    assert all(param["name"] != "response" for param in unlock.get("parameters", []))


def test_docs_page_renders_with_local_assets_and_no_inline_script(client, db):
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    page = Assets()
    page.feed(response.content.decode())
    sources = [script["src"] for script in page.scripts if script.get("src")]
    assert "/static/ninja/swagger-ui-bundle.js" in sources
    for script in page.scripts:
        # A JSON data block is not executed, so the CSP lets it be; any other inline script
        # would be blocked.
        assert script.get("src") or script.get("type") == "application/json", script
    for url in [*sources, *page.links]:
        assert url.startswith("/static/"), url  # no CDN: the CSP allows 'self' only
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file"


# --- The rules the server enforces, stated for generated clients and fuzzers -----------------


def _components(client) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json()["components"]["schemas"]


def _branch(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null alternative of an optional property (CarPatch's), or the property."""
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return option
    return prop


@pytest.mark.parametrize("schema_name", ["CarIn", "CarPatch"])
def test_openapi_document_states_the_car_rules(client, db, schema_name):
    props = {
        name: _branch(prop) for name, prop in _components(client)[schema_name]["properties"].items()
    }

    assert (props["year"]["minimum"], props["year"]["maximum"]) == (MIN_YEAR, 2100)
    assert (props["seats"]["minimum"], props["seats"]["maximum"]) == (1, 9)
    for price in ("hourly_price", "daily_price"):
        assert props[price]["type"] == "number"
        assert props[price]["minimum"] > 0
    assert (props["latitude"]["minimum"], props["latitude"]["maximum"]) == (-90, 90)
    assert (props["longitude"]["minimum"], props["longitude"]["maximum"]) == (-180, 180)
    assert (props["min_notice_hours"]["minimum"], props["min_notice_hours"]["maximum"]) == (0, 720)
    assert props["min_duration_hours"]["minimum"] == 1
    assert props["max_duration_days"]["minimum"] == 1
    assert props["early_access_minutes"]["maximum"] == 120
    assert set(props["make"]["enum"]) == MAKE_IDS
    assert set(props["fuel_type"]["enum"]) == set(FuelType.values)
    assert "Europe/Amsterdam" in props["time_zone"]["enum"]
    assert props["model"]["maxLength"] == Car._meta.get_field("model").max_length
    assert props["vin"]["pattern"]
    assert props["instant_book"]["type"] == "boolean"


def test_openapi_document_describes_the_rules_between_fields(client, db):
    car_in = _components(client)["CarIn"]
    assert "daily_price is not below hourly_price" in car_in["description"]
    assert "min_duration_hours" in car_in["properties"]["max_duration_days"]["description"]
    assert (
        "after starts_at"
        in _components(client)["BookingIn"]["properties"]["ends_at"]["description"]
    )


def test_openapi_document_states_the_query_rules(client, db):
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    def params(path: str) -> dict[str, Any]:
        return {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"]}

    cars = params("/api/v1/cars")
    seats = cars["seats"]["anyOf"][0]
    assert (seats["type"], seats["minimum"], seats["maximum"]) == ("integer", 1, 9)
    assert cars["available_from"]["anyOf"][0]["format"] == "date-time"
    assert set(cars["instant_book"]["enum"]) >= {"", "true", "false"}
    status = params("/api/v1/bookings")["status"]
    assert re.fullmatch(status["pattern"], "requested,confirmed")
    assert not re.fullmatch(status["pattern"], "requested,sideways")


# Values at each stated bound, and the companions a rule between fields needs with them.
COMPANIONS: dict[str, dict[str, Any]] = {
    "hourly_price": {"daily_price": 999999.99},
    "daily_price": {"hourly_price": 0.01},
    "min_duration_hours": {"max_duration_days": 32767},
}


def _numeric_bounds(client) -> list[tuple[str, str, float]]:
    props = _components(client)["CarIn"]["properties"]
    return [
        (name, bound, prop[bound])
        for name, prop in props.items()
        for bound in ("minimum", "maximum")
        if bound in prop
    ]


def test_every_stated_bound_is_the_servers(client, owner):
    """At each bound the document states, the server accepts; one step beyond, it refuses: the
    document and the rules it was derived from agree."""
    headers = {"X-Session-Token": session_token(client, owner)}
    bounds = _numeric_bounds(client)
    assert len(bounds) > 10
    for index, (name, bound, value) in enumerate(bounds):
        exact = value if isinstance(value, int) else Decimal(str(value))
        step = 1 if isinstance(value, int) else Decimal("0.01")
        beyond = str(exact - step if bound == "minimum" else exact + step)
        plate = f"BND{index:03d}"
        body = car_payload(licence_plate=plate, **{name: value}, **COMPANIONS.get(name, {}))
        accepted = client.post(CARS, body, content_type="application/json", headers=headers)
        assert accepted.status_code == 201, (name, bound, value, accepted.content)
        body = car_payload(licence_plate=plate + "X", **{name: beyond}, **COMPANIONS.get(name, {}))
        refused = client.post(CARS, body, content_type="application/json", headers=headers)
        assert_error(refused, 400, "invalid", name)
