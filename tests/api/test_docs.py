"""The OpenAPI document and the interactive docs, which must run under our CSP."""

from __future__ import annotations

from html.parser import HTMLParser

from django.contrib.staticfiles import finders

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
