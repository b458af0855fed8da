"""The simulator runs as a real subprocess on a free port; tests talk HTTP to it, nothing else.

They need neither the database nor Redis, so the project-wide autouse fixtures that touch
Django's settings and cache are replaced by no-ops here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.simulation import SimProcess

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "http://localhost:8000/callback"
ALL_SCOPE = (
    "read_vehicle_info read_vin read_location read_odometer read_fuel read_battery "
    "read_charge read_security control_security read_engine_oil read_tires"
)


@pytest.fixture(autouse=True)
def _media_root() -> None:
    """Overrides tests/conftest.py: no Django settings needed."""


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Overrides tests/conftest.py: no Redis needed."""


@pytest.fixture(scope="session")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    # Webhook retries after tens of milliseconds instead of Smartcar's 25/50/100 s.
    env = {"SIMULATOR_WEBHOOK_RETRY_DELAYS": "0.05,0.1,0.2"}
    process = SimProcess(tmp_path_factory.mktemp("sim") / "simulator.db", env=env)
    yield process
    process.stop()
    log = process.log.read_text()
    assert "Traceback" not in log, log  # no handler may have crashed during the session


class Sim:
    """A thin HTTP helper around one running simulator."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.http.post(self.url + path, json=json, timeout=10, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=10, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.http.patch(self.url + path, json=json, timeout=10, **kw)

    def vehicle(self, **fields: Any) -> dict[str, Any]:
        data = {
            "make": "FORD",
            "model": "Focus",
            "year": 2021,
            "owner_email": "owner@example.test",
            "latitude": 52.52,
            "longitude": 13.405,
        }
        data.update(fields)
        response = self.post("/_sim/vehicles", data)
        assert response.status_code == 201, response.text
        return response.json()

    def state(self, vehicle_id: str) -> dict[str, Any]:
        response = self.get(f"/_sim/vehicles/{vehicle_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def code(self, *, email: str = "owner@example.test", scope: str = ALL_SCOPE, **kw: Any) -> str:
        body = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": "xyz",
            "owner_email": email,
            "decision": "approve",
            **kw,
        }
        response = self.post("/_sim/connect", body)
        assert response.status_code == 200, response.text
        query = parse_qs(urlsplit(response.json()["redirect_url"]).query)
        assert "code" in query, query
        return query["code"][0]

    def token(self, **form: str) -> requests.Response:
        return self.http.post(
            self.url + "/oauth/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10
        )

    def tokens(self, **kw: Any) -> dict[str, Any]:
        response = self.token(
            grant_type="authorization_code", code=self.code(**kw), redirect_uri=REDIRECT_URI
        )
        assert response.status_code == 200, response.text
        return response.json()

    def api(self, method: str, path: str, token: str | None, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(
            method, f"{self.url}/v2.0{path}", headers=headers, timeout=10, **kw
        )

    def advance(self, seconds: float) -> None:
        assert self.post("/_sim/clock", {"advance_seconds": seconds}).status_code == 200


@pytest.fixture
def sim(sim_process: SimProcess) -> Sim:
    """A freshly reset simulator with the test client registered."""
    helper = Sim(sim_process.url)
    assert helper.post("/_sim/reset").status_code == 200
    response = helper.post(
        "/_sim/clients",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]},
    )
    assert response.status_code == 201, response.text
    return helper


@pytest.fixture
def car(sim: Sim) -> dict[str, Any]:
    return sim.vehicle()


@pytest.fixture
def token(sim: Sim, car: dict[str, Any]) -> str:
    return sim.tokens()["access_token"]


def assert_error(
    response: requests.Response, status: int, error_type: str, code: str | None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["type"], body["code"], body["statusCode"]) == (error_type, code, status), body
    assert body["requestId"] == response.headers["SC-Request-Id"]
    assert body["docURL"].startswith("https://smartcar.com/docs/errors/api-errors/")
    assert "resolution" in body
    assert "description" in body
    return body
