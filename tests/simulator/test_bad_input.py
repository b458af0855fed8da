"""Bad input of every kind, to every endpoint: a documented error, never a 500 or a traceback."""

from __future__ import annotations

import pytest

GARBAGE = [
    ("json-array", b"[1, 2, 3]", "application/json"),
    ("json-broken", b'{"action": ', "application/json"),
    ("json-number", b"42", "application/json"),
    ("json-nested", b'{"requests": [[{}]], "action": {"x": 1}, "make": [1]}', "application/json"),
    ("binary", bytes(range(256)), "application/octet-stream"),
    ("form", b"a=1&b=%ZZ&c", "application/x-www-form-urlencoded"),
    (
        "multipart-broken",
        b"--x\r\nContent-Disposition: form-data\r\n\r\n",
        "multipart/form-data; boundary=x",
    ),
    ("empty", b"", "application/json"),
    ("huge-string", b'{"make": "' + b"A" * 100_000 + b'"}', "application/json"),
]


def endpoints(car_id: str) -> list[tuple[str, str]]:
    v = f"/v2.0/vehicles/{car_id}"
    return [
        ("POST", "/_sim/clients"),
        ("POST", "/_sim/vehicles"),
        ("PATCH", f"/_sim/vehicles/{car_id}"),
        ("POST", f"/_sim/vehicles/{car_id}/faults"),
        ("POST", f"/_sim/vehicles/{car_id}/drive"),
        ("POST", "/_sim/connect"),
        ("POST", "/_sim/clock"),
        ("POST", "/_sim/webhooks"),
        ("POST", f"{v}/webhooks/not-a-uuid"),
        ("POST", "/oauth/token"),
        ("POST", f"{v}/security"),
        ("POST", f"{v}/batch"),
        ("DELETE", f"{v}/application"),
        ("GET", "/v2.0/vehicles?limit=%00&offset=-"),
        ("GET", f"{v}/permissions?limit=abc"),
        ("GET", "/v2.0/vehicles/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", "/v2.0/management/connections?limit=x&cursor=%ff"),
        ("DELETE", "/v2.0/management/connections/?user_id=1&vehicle_id=2"),
        ("POST", "/oauth/connect/nope/login"),
        ("GET", "/oauth/authorize?client_id=%00&scope=%ff"),
    ]


@pytest.mark.parametrize(("label", "payload", "content_type"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_never_breaks_the_server(sim, car, token, label, payload, content_type):
    for method, path in endpoints(car["id"]):
        headers = {"Content-Type": content_type}
        if path.startswith("/v2.0"):
            headers["Authorization"] = f"Bearer {token}"
        if path == "/oauth/token":
            headers["Authorization"] = (
                "Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ="  # test-client:test-secret
            )
        response = sim.http.request(
            method, sim.url + path, data=payload, headers=headers, timeout=10
        )
        assert response.status_code < 500, (label, method, path, response.text[:300])
        assert "Traceback" not in response.text
        assert response.headers.get("SC-Request-Id")
        if not path.startswith(("/oauth/authorize", "/oauth/connect")):
            assert response.headers["Content-Type"].startswith("application/json"), (method, path)
            body = response.json()
            assert "type" in body or "error" in body or response.status_code < 400, body
        if response.status_code >= 400 and "type" in (body := _json(response)):
            assert body["statusCode"] == response.status_code


def _json(response):
    try:
        return response.json()
    except ValueError:
        return {}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(
    "path", ["/", "/v2.0", "/v2.0/", "/v2.0/vehicles/x/y/z", "/_sim", "/oauth"]
)
def test_unknown_routes_are_json_404(sim, method, path):
    response = sim.http.request(method, sim.url + path, timeout=10)
    assert response.status_code in (404, 401), response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["type"] in ("RESOURCE_NOT_FOUND", "AUTHENTICATION")


def test_deeply_nested_json(sim, car, token):
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/_sim/vehicles", f"/v2.0/vehicles/{car['id']}/security"):
        response = sim.http.post(
            sim.url + path,
            data=deep,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 400, response.text[:200]
        assert response.json()["type"] == "VALIDATION"
