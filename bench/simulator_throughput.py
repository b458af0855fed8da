"""Simulator throughput: lock/unlock requests per second and commands in flight at once.

Starts its own simulator on a free loopback port with a throwaway database (or uses --url),
runs bounded rounds and stops by itself. Usage:

    .venv/bin/python bench/simulator_throughput.py [--seconds 5] [--rounds 3] [--in-flight 1500]

Prints a table of medians, and JSON with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
REDIRECT = "http://localhost/cb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def simulator(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SIMULATOR_DB": str(Path(tmp) / "bench.db")}
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "simulator", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _wait_up(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with http.get(url + "/_sim/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("simulator did not start")


async def _setup(
    http: aiohttp.ClientSession, url: str, *, cars: int, email: str, **fields: Any
) -> tuple[str, list[str]]:
    """Register a client, create cars for one owner, connect them all; returns token and ids."""
    client = {"client_id": "bench", "client_secret": "bench", "redirect_uris": [REDIRECT]}
    await (await http.post(url + "/_sim/clients", json=client)).read()
    ids = []
    make = fields.pop("make", "FORD")
    for i in range(cars):
        body = {
            "make": make,
            "model": f"Bench {i}",
            "year": 2022,
            "owner_email": email,
            "latitude": 48.0,
            "longitude": 11.0,
            "rate_limit_requests": None,  # measure the server, not the throttle
            **fields,
        }
        async with http.post(url + "/_sim/vehicles", json=body) as r:
            ids.append((await r.json())["id"])
    connect = {
        "client_id": "bench",
        "redirect_uri": REDIRECT,
        "scope": "control_security read_security",
        "owner_email": email,
        "decision": "approve",
    }
    async with http.post(url + "/_sim/connect", json=connect) as r:
        code = parse_qs(urlsplit((await r.json())["redirect_url"]).query)["code"][0]
    basic = base64.b64encode(b"bench:bench").decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    async with http.post(
        url + "/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}
    ) as r:
        token = (await r.json())["access_token"]
    return token, ids


async def _rate(
    http: aiohttp.ClientSession, make_request: Any, *, seconds: float, concurrency: int
) -> tuple[float, int]:
    """Requests/s for `seconds` with `concurrency` workers; returns (rate, failures)."""
    done = failures = 0
    stop = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done, failures
        i = n
        while time.perf_counter() < stop:
            method, target, kwargs = make_request(i)
            async with http.request(method, target, **kwargs) as r:
                await r.read()
                if r.status != 200:
                    failures += 1
            done += 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - start), failures


async def _in_flight(http: aiohttp.ClientSession, url: str, total: int) -> dict[str, Any]:
    # Realistic latency (Tesla: 3-8 s per command), one car per 10 commands.
    token, ids = await _setup(
        http,
        url,
        cars=max(1, total // 10),
        email="inflight@bench.test",
        make="TESLA",
        latency_profile="realistic",
    )
    headers = {"Authorization": f"Bearer {token}"}
    peak = 0

    async def poll(done: asyncio.Event) -> None:
        nonlocal peak
        while not done.is_set():
            async with http.get(url + "/_sim/health") as r:
                peak = max(peak, (await r.json())["in_flight_commands"])
            await asyncio.sleep(0.1)

    async def command(i: int) -> int:
        target = f"{url}/v2.0/vehicles/{ids[i % len(ids)]}/security"
        action = "UNLOCK" if i % 2 else "LOCK"
        async with http.post(target, json={"action": action}, headers=headers) as r:
            await r.read()
            return r.status

    done = asyncio.Event()
    poller = asyncio.create_task(poll(done))
    start = time.perf_counter()
    statuses = await asyncio.gather(*(command(i) for i in range(total)))
    elapsed = time.perf_counter() - start
    done.set()
    await poller
    async with http.get(url + "/_sim/health") as r:
        server_peak = (await r.json())["max_in_flight_commands"]
    return {
        "commands": total,
        "succeeded": sum(1 for s in statuses if s == 200),
        "peak_in_flight_polled": peak,
        "peak_in_flight_server": server_peak,
        "wall_s": round(elapsed, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    _raise_fd_limit()
    results: dict[str, Any] = {"health_rps": [], "lock_unlock_rps": [], "failures": 0}
    with simulator(args.url) as url:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            await _wait_up(http, url)
            await (await http.post(url + "/_sim/reset")).read()
            token, ids = await _setup(http, url, cars=20, email="rps@bench.test")
            headers = {"Authorization": f"Bearer {token}"}

            def health(_i: int) -> tuple[str, str, dict[str, Any]]:
                return "GET", url + "/_sim/health", {}

            def lock_unlock(i: int) -> tuple[str, str, dict[str, Any]]:
                action = "LOCK" if (i // len(ids)) % 2 else "UNLOCK"
                target = f"{url}/v2.0/vehicles/{ids[i % len(ids)]}/security"
                return "POST", target, {"json": {"action": action}, "headers": headers}

            for _ in range(args.rounds):
                rate, failed = await _rate(
                    http, health, seconds=args.seconds, concurrency=args.concurrency
                )
                results["health_rps"].append(round(rate))
                results["failures"] += failed
                rate, failed = await _rate(
                    http, lock_unlock, seconds=args.seconds, concurrency=args.concurrency
                )
                results["lock_unlock_rps"].append(round(rate))
                results["failures"] += failed
            results["in_flight"] = await _in_flight(http, url, args.in_flight)
    results["health_rps_median"] = statistics.median(results["health_rps"])
    results["lock_unlock_rps_median"] = statistics.median(results["lock_unlock_rps"])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use a running simulator instead of starting one")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--in-flight", type=int, default=1500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    flight = results["in_flight"]
    print(
        f"GET /_sim/health        req/s median {results['health_rps_median']:>7} {results['health_rps']}"
    )
    print(
        f"POST security LOCK/UNLOCK req/s median {results['lock_unlock_rps_median']:>5} "
        f"{results['lock_unlock_rps']} (non-200: {results['failures']})"
    )
    print(
        f"in flight (realistic latency): {flight['peak_in_flight_server']} at once of "
        f"{flight['commands']} sent, {flight['succeeded']} succeeded, {flight['wall_s']} s"
    )
    return 0 if results["failures"] == 0 and flight["succeeded"] == flight["commands"] else 1


if __name__ == "__main__":
    sys.exit(main())
