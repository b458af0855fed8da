"""What carshare adds to a lock: owner "Lock now" through the API vs a bare POST to the cloud.

For each round, in the same run and interleaved so both see the same machine noise:
  api:  t0 → POST /api/v1/cars/{id}/lock (gunicorn) → outbox row → Celery `vehicle` worker →
        provider → the simulator receives LOCK at `received_at`
  bare: t0 → POST /v2.0/vehicles/{id}/security straight to the simulator → `received_at`
Both figures are t0 → the simulator's own received_at (same machine, same clock), so what the
difference shows is carshare's overhead: the web request, the commit, the broker hop, the
worker's claim and token read. The simulator runs with instant latency and no throttle.

Needs PostgreSQL and Redis: run it through `make bench` (embedded servers) or with
DATABASE_URL / REDIS_URL set. Loopback only; stops by itself.

    .venv/bin/python -m carshare.devservers -- .venv/bin/python bench/lock_now_overhead.py -n 500
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import benchlib  # noqa: E402
from tests.simulation import SimControl, SimProcess, free_port  # noqa: E402

BENCH_DB = "carshare_bench"
PASSWORD = "bench-password-not-secret"  # noqa: S105


def _received_at(sim: SimControl, vehicle_id: str, count_before: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        commands = sim.vehicle(vehicle_id)["commands"]
        if len(commands) > count_before:
            stamp = commands[-1]["received_at"].replace("Z", "+00:00")
            return datetime.datetime.fromisoformat(stamp).timestamp()
        time.sleep(0.003)
    raise TimeoutError("the simulator never received the command")


def _seed(env: dict[str, str], sim: SimControl) -> tuple[str, str, str, str]:
    """An owner with a car connected to a simulator vehicle, and a twin vehicle for the bare
    POSTs (the simulator logs 1,000 commands per vehicle); returns (car, vehicle, twin, token)."""
    os.environ.update(env)
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.conf import settings

    from accounts.models import User
    from tests.factories import CarFactory
    from vehicles import connect
    from vehicles.cloud.configured import get_provider
    from vehicles.cloud.provider import CONNECT_SCOPES

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    sim.register_client(
        client_id=settings.SMARTCAR_CLIENT_ID,
        client_secret=settings.SMARTCAR_CLIENT_SECRET,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
    )
    owner = User.objects.create_user(email="bench-owner@example.test", password=PASSWORD)
    EmailAddress.objects.create(user=owner, email=owner.email, primary=True, verified=True)
    car = CarFactory(owner=owner)
    vehicle, twin = (
        sim.add_vehicle(
            owner_email=owner.email, latency_profile="instant", rate_limit_requests=None
        )
        for _ in range(2)
    )
    query = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope=" ".join(CONNECT_SCOPES),
        owner_email=owner.email,
        vehicle_ids=[vehicle["id"], twin["id"]],
    )
    provider = get_provider()
    tokens = provider.exchange_code(code=query["code"][0])
    connect.connection_create(
        car=car,
        tokens=tokens,
        vehicle_id=vehicle["id"],
        scopes=[s.removeprefix("required:") for s in CONNECT_SCOPES],
        attributes=None,
        vin="",
        mode="simulator",
    )
    return str(car.public_id), vehicle["id"], twin["id"], tokens.access_token


def run(rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        simulator = SimProcess(Path(tmp) / "sim.db")
        sim = SimControl(simulator.url)
        web_port = free_port()
        env = benchlib.production_environment(
            database_url=benchlib.database_recreate(BENCH_DB),
            redis_db=12,
            SIMULATOR_URL=simulator.url,
            CARSHARE_SITE_URL=f"http://127.0.0.1:{web_port}",
        )
        car_id, vehicle_id, twin_id, access_token = _seed(env, sim)
        processes = [
            subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "gunicorn", "carshare.wsgi", "-w", "2",
                 "-b", f"127.0.0.1:{web_port}", "--log-level", "warning"],
                cwd=ROOT, env=env,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "carshare", "worker", "-Q", "vehicle",
                 "-P", "threads", "-c", "20", "-l", "WARNING", "--without-heartbeat",
                 "--without-mingle", "--without-gossip"],
                cwd=ROOT, env=env,
            ),
        ]  # fmt: skip
        try:
            base = f"http://127.0.0.1:{web_port}"
            benchlib.wait_http(base + "/api/v1/openapi.json")
            http = requests.Session()
            login = http.post(
                base + "/_allauth/app/v1/auth/login",
                json={"email": "bench-owner@example.test", "password": PASSWORD},
                timeout=10,
            )
            token = login.json()["meta"]["session_token"]
            api_headers = {"X-Session-Token": token}
            bare_headers = {"Authorization": f"Bearer {access_token}"}
            api, bare = [], []
            for _ in range(rounds + 5):  # the first 5 warm up pools and caches
                count = len(sim.vehicle(vehicle_id)["commands"])
                t0 = time.time()
                response = http.post(
                    f"{base}/api/v1/cars/{car_id}/lock", headers=api_headers, timeout=10
                )
                assert response.status_code == 202, response.text
                command_url = f"{base}/api/v1/commands/{response.json()['command']['id']}"
                try:
                    received = _received_at(sim, vehicle_id, count, time.monotonic() + 30)
                except TimeoutError:
                    print("stuck:", http.get(command_url, headers=api_headers, timeout=10).text)
                    raise
                api.append(received - t0)
                while http.get(command_url, headers=api_headers, timeout=10).json()["status"] in (
                    "queued",
                    "sent",
                ):
                    time.sleep(0.005)  # one command in flight per car: let this one finish

                count = len(sim.vehicle(twin_id)["commands"])
                t0 = time.time()
                response = http.post(
                    f"{simulator.url}/v2.0/vehicles/{twin_id}/security",
                    json={"action": "LOCK"},
                    headers=bare_headers,
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                bare.append(_received_at(sim, twin_id, count, time.monotonic() + 30) - t0)
            api, bare = api[5:], bare[5:]
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)
            simulator.stop()
    diff = [a - b for a, b in zip(api, bare, strict=True)]

    def ms(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(benchlib.percentile(values, 95) * 1000, 1),
        }

    return {"rounds": len(api), "api": ms(api), "bare": ms(bare), "overhead": ms(diff)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The simulator keeps the last 1,000 commands of a vehicle; the count must stay below.
    parser.add_argument("-n", "--rounds", type=int, default=500, choices=range(1, 990))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['rounds']} rounds (t0 → the simulator receives LOCK)")
    print(f"{'':10} {'p50 ms':>8} {'p95 ms':>8}")
    for name in ("bare", "api", "overhead"):
        figures = result[name]
        print(f"{name:10} {figures['p50_ms']:>8} {figures['p95_ms']:>8}")


if __name__ == "__main__":
    main()
