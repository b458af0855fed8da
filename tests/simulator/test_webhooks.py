"""Webhooks: the VERIFY challenge, signed deliveries the SDK verifies, retries, unsubscribe."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import smartcar

from tests.simulator.conftest import CLIENT_ID


class Receiver:
    """A callback URL in a thread: answers the challenge, records events, fails on request."""

    def __init__(self) -> None:
        self.amt = ""
        self.challenges: list[str] = []
        self.events: list[tuple[dict[str, str], bytes]] = []
        self.failures_left = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                if payload["eventType"] == "VERIFY":
                    receiver.challenges.append(payload["data"]["challenge"])
                    answer = smartcar.hash_challenge(receiver.amt, payload["data"]["challenge"])
                    self._send(200, json.dumps({"challenge": answer}).encode())
                    return
                with receiver.cond:
                    if receiver.failures_left:
                        receiver.failures_left -= 1
                        self._send(500, b"{}")
                        return
                    receiver.events.append((dict(self.headers), body))
                    receiver.cond.notify_all()
                self._send(200, b"{}")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= count, timeout=5), self.events
            return list(self.events)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def amt(sim) -> str:
    return sim.get("/_sim/clients").json()["clients"][0]["management_token"]


@pytest.fixture
def webhook(sim, receiver, amt) -> dict[str, Any]:
    receiver.amt = amt
    response = sim.post(
        "/_sim/webhooks", {"client_id": CLIENT_ID, "callback_url": receiver.url, "name": "Locks"}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_webhook_is_verified_with_the_challenge(webhook, receiver):
    assert webhook["verified"] is True
    # A token, as Smartcar sends: the app answers nothing else (no answer may sign an event).
    (challenge,) = receiver.challenges
    assert re.fullmatch(r"[0-9a-f]{32}", challenge)


def test_wrong_challenge_answer_leaves_it_unverified(sim, receiver):
    receiver.amt = "not-the-token"
    created = sim.post("/_sim/webhooks", {"client_id": CLIENT_ID, "callback_url": receiver.url})
    assert created.json()["verified"] is False


def test_lock_sends_a_signed_vehicle_state_event(sim, car, token, webhook, receiver, amt):
    subscribed = sim.api("POST", f"/vehicles/{car['id']}/webhooks/{webhook['id']}", token)
    assert subscribed.json() == {"webhookId": webhook["id"], "vehicleId": car["id"]}
    assert sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "UNLOCK"}).ok
    ((headers, body),) = receiver.wait_for(1)
    assert smartcar.verify_payload(amt, headers["SC-Signature"], body.decode())
    event = json.loads(body)
    assert body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    assert event["eventType"] == "VEHICLE_STATE"
    assert event["vehicleId"] == car["id"]
    assert event["meta"]["webhookId"] == webhook["id"]
    assert event["data"]["triggers"] == [
        {"code": "closure-islocked", "name": "IsLocked", "group": "Closure"}
    ]
    locked = next(s for s in event["data"]["signals"] if s["code"] == "closure-islocked")
    assert locked["body"] == {"value": False}
    # Stamped at each attempt, in epoch milliseconds: the app refuses events without it.
    assert abs(event["meta"]["deliveredAt"] - time.time() * 1000) < 5000


def test_refused_command_sends_vehicle_error(sim, car, token, webhook, receiver):
    sim.api("POST", f"/vehicles/{car['id']}/webhooks/{webhook['id']}", token)
    sim.patch(f"/_sim/vehicles/{car['id']}", {"doors_open": True})
    sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "LOCK"})
    ((_, body),) = receiver.wait_for(1)
    event = json.loads(body)
    assert event["eventType"] == "VEHICLE_ERROR"
    error = event["data"]["errors"][0]
    assert (error["type"], error["code"], error["state"]) == ("VEHICLE_STATE", "DOOR_OPEN", "ERROR")


def test_failed_delivery_is_retried_with_the_same_event_id(sim, car, token, webhook, receiver):
    receiver.failures_left = 2
    sim.api("POST", f"/vehicles/{car['id']}/webhooks/{webhook['id']}", token)
    sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "UNLOCK"})
    ((_, body),) = receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while True:  # the simulator logs an attempt once the receiver's answer is back
        log = sim.get(f"/_sim/webhooks/{webhook['id']}/deliveries").json()["deliveries"]
        attempts = [d for d in log if d["event_type"] == "VEHICLE_STATE"]
        if len(attempts) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert [(d["attempt"], d["ok"]) for d in attempts] == [(1, False), (2, False), (3, True)]
    assert {d["event_id"] for d in attempts} == {json.loads(body)["eventId"]}


def test_unsubscribe_needs_the_management_token(sim, car, token, webhook, receiver, amt):
    path = f"/vehicles/{car['id']}/webhooks/{webhook['id']}"
    sim.api("POST", path, token)
    assert sim.api("DELETE", path, token).status_code == 401  # the access token is not enough
    assert sim.api("DELETE", path, amt).json() == {"status": "success"}
    sim.api("POST", f"/vehicles/{car['id']}/security", token, json={"action": "UNLOCK"})
    log = sim.get(f"/_sim/webhooks/{webhook['id']}/deliveries").json()["deliveries"]
    assert [d["event_type"] for d in log] == ["VERIFY"]


def test_subscribe_to_unknown_webhook(sim, car, token):
    response = sim.api(
        "POST", f"/vehicles/{car['id']}/webhooks/00000000-0000-4000-8000-000000000000", token
    )
    assert response.status_code == 404
    assert response.json()["type"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"client_id": "nope", "callback_url": "http://x.test"},
        {"client_id": CLIENT_ID, "callback_url": "ftp://x"},
    ],
)
def test_webhook_creation_validates(sim, body):
    response = sim.post("/_sim/webhooks", body)
    assert response.status_code == 400
    assert response.json()["type"] == "VALIDATION"
