"""Every query parameter of the OpenAPI document, given a value the document refuses, answers a
4xx in the error envelope naming it; a parameter the operation does not take is refused too,
rather than ignored (a misspelt filter must not answer with an unfiltered list)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from carshare.api import api
from tests.api.helpers import assert_envelope, assert_error

# Values to try, in order, until one is outside what the document allows for the parameter.
CANDIDATES = ["x!", "1.5", "-1", "0", "1e999", "9" * 40, "2026-13-45T25:00:00Z", "x" * 1001]


def _query_parameters() -> list[tuple[str, str, dict[str, Any]]]:
    document = api.get_openapi_schema()
    return [
        (path, parameter["name"], parameter["schema"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method == "get"
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    ]


def _as_sent(text: str) -> Any:
    """How the document's schema sees a query value: numbers as numbers, the rest as text."""
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return int(text) if text.lstrip("-").isdigit() else number


def _refused_value(schema: dict[str, Any]) -> str | None:
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    for text in CANDIDATES:
        if not validator.is_valid(_as_sent(text)) and not validator.is_valid(text):
            return text
    return None


QUERY_PARAMETERS = _query_parameters()
GET_PATHS = sorted({path for path, _name, _schema in QUERY_PARAMETERS})


def _url(path: str, car: Any) -> str:
    return path.replace("{car_id}", str(car.public_id))


@pytest.mark.parametrize(
    ("path", "name", "schema"),
    QUERY_PARAMETERS,
    ids=[f"{path}?{name}" for path, name, _ in QUERY_PARAMETERS],
)
def test_a_value_the_document_refuses_is_a_400_naming_the_parameter(
    client, car, owner_auth, path, name, schema
):
    value = _refused_value(schema)
    assert value is not None, f"the document states nothing {name} could break: {schema}"

    response = client.get(_url(path, car), {name: value}, headers=owner_auth)

    assert_error(response, 400, "invalid", name)
    assert_envelope(response)


@pytest.mark.parametrize("path", GET_PATHS)
def test_an_unknown_parameter_is_a_400_naming_it(client, car, owner_auth, path):
    response = client.get(_url(path, car), {"price_min": "abc"}, headers=owner_auth)

    error = assert_error(response, 400, "invalid", "price_min")
    assert error["fields"]["price_min"] == ["Unknown parameter."]


@pytest.mark.parametrize("value", ["abc", "yes", "no", "TRUE"])
def test_instant_book_is_a_real_boolean(client, car, value):
    assert_error(
        client.get("/api/v1/cars", {"instant_book": value}), 400, "invalid", "instant_book"
    )


@pytest.mark.parametrize(("value", "count"), [("true", 0), ("on", 0), ("false", 1), ("", 1)])
def test_instant_book_filters_as_on_the_browse_page(client, public_car, value, count):
    car = public_car
    car.instant_book = False
    car.save(update_fields=["instant_book"])

    response = client.get("/api/v1/cars", {"instant_book": value})

    assert response.status_code == 200, response.content
    assert response.json()["count"] == count
