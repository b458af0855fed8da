"""The vehicle-cloud simulator as a real subprocess, for any test that needs a car to talk to.

Tests reach it over HTTP only, exactly as the app does; they arrange the world through its
control API (/_sim/...). See simulator/README.md for that API.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SimProcess:
    """`python -m simulator` on a free port with its own state file."""

    def __init__(
        self, db: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.log = db.with_suffix(".log")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
        full_env.update({"SIMULATOR_DB": str(db), **(env or {})})
        self._log_fh = self.log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "simulator", "--port", str(self.port), *(args or [])],
            cwd=ROOT,
            env=full_env,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{self.url}/_sim/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"simulator did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()


class SimControl:
    """The simulator's control API (/_sim/...) for arranging a test's world."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def _call(self, method: str, path: str, expect: int, json: Any = None) -> Any:
        response = self.http.request(method, self.url + path, json=json, timeout=10)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def reset(self) -> None:
        self._call("POST", "/_sim/reset", 200)

    def register_client(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        management_token: str = "",
    ) -> None:
        body = {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": [redirect_uri],
        }
        if management_token:
            body["management_token"] = management_token
        response = self.http.post(self.url + "/_sim/clients", json=body, timeout=10)
        assert response.status_code in (200, 201), response.text

    def add_vehicle(self, **fields: Any) -> dict[str, Any]:
        data = {
            "make": "VOLKSWAGEN",
            "model": "Golf",
            "year": 2021,
            "owner_email": "owner@example.test",
            "latitude": 52.374,
            "longitude": 4.898,
        }
        data.update(fields)
        return self._call("POST", "/_sim/vehicles", 201, data)

    def vehicle(self, vehicle_id: str) -> dict[str, Any]:
        return self._call("GET", f"/_sim/vehicles/{vehicle_id}", 200)

    def set_state(self, vehicle_id: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/_sim/vehicles/{vehicle_id}", 200, fields)

    def fault(self, vehicle_id: str, **fault: Any) -> None:
        response = self.http.post(
            f"{self.url}/_sim/vehicles/{vehicle_id}/faults", json=fault, timeout=10
        )
        assert response.status_code in (200, 201), response.text

    def consent(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        owner_email: str,
        state: str = "",
        vehicle_ids: list[str] | None = None,
        decision: str = "approve",
    ) -> dict[str, list[str]]:
        """Headless Connect: the query of the redirect Connect would have sent back."""
        body: dict[str, Any] = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "owner_email": owner_email,
            "decision": decision,
        }
        if vehicle_ids is not None:
            body["vehicle_ids"] = vehicle_ids
        redirect_url = self._call("POST", "/_sim/connect", 200, body)["redirect_url"]
        return parse_qs(urlsplit(redirect_url).query)
