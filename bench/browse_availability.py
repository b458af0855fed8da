"""Browse with availability: the browse page and GET /api/v1/cars filtered by free dates over
10,000 cars and 200,000 bookings, against a trivial Django view (GET /healthz) on the same
server.

It creates its own database (carshare_bench_browse), seeds it with bulk inserts, ANALYZEs,
counts the SQL queries per request in-process for a short and a long page of results, then
starts gunicorn (2 sync workers, production settings) and drives each URL with a fixed number of
client threads for a fixed time per round, interleaved round by round. Loopback only; stops by
itself and drops its database at the end.

Needs PostgreSQL: run it through `make bench` (embedded servers) or with DATABASE_URL set.

    .venv/bin/python -m carshare.devservers -- .venv/bin/python bench/browse_availability.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import benchlib  # noqa: E402
from tests.simulation import free_port  # noqa: E402

BENCH_DB = "carshare_bench_browse"
CARS = 10_000
BOOKINGS_PER_CAR = 20  # 200,000 bookings
CARS_PER_OWNER = 50  # about 2 owners per 100 cars
RENTERS = 1_000
CITIES = {  # name: (latitude, longitude)
    "Amsterdam": (52.3740, 4.8980),
    "Rotterdam": (51.9225, 4.4792),
    "Utrecht": (52.0907, 5.1214),
    "Den Haag": (52.0705, 4.3007),
    "Eindhoven": (51.4416, 5.4697),
}
MAKES = {  # make code: models
    "VOLKSWAGEN": ["Golf", "Polo", "ID.3"],
    "TOYOTA": ["Yaris", "Corolla"],
    "TESLA": ["Model 3", "Model Y"],
    "RENAULT": ["Clio", "Zoe"],
    "KIA": ["Niro", "Picanto"],
    "BMW": ["i3", "320i"],
}
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
BUFFER = datetime.timedelta(minutes=30)  # the car default


def _environment(web_port: int, static_root: str) -> dict[str, str]:
    return benchlib.production_environment(
        database_url=benchlib.database_recreate(BENCH_DB),
        redis_db=13,
        CARSHARE_SITE_URL=f"http://127.0.0.1:{web_port}",
        STATIC_ROOT=static_root,
    )


# --- Seeding ---------------------------------------------------------------------------------


def _seed(env: dict[str, str], now: datetime.datetime) -> dict[str, int]:
    """10,000 cars over 5 cities and 6 makes, 20 bookings each laid end to end (never
    overlapping, a buffer apart) from 60 days ago to ~5 months ahead: past ones completed or
    cancelled, later ones confirmed, requested (some overdue) or cancelled; holding ones get
    their Occupancy (trip plus buffer; a request's expires at its respond_by), as the services
    would write them."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import User
    from bookings.models import Booking, BookingStatus
    from vehicles.models import LOCK_PERMISSION, Car, Occupancy, OccupancyKind, VehicleConnection

    B = BookingStatus
    rng = random.Random(5)  # the same data every run
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    nobody_signs_in = make_password(None)  # unusable: nobody signs in as these users
    users = User.objects.bulk_create(
        [
            User(email=f"owner{n}@bench.test", name=f"Owner {n}", password=nobody_signs_in)
            for n in range(CARS // CARS_PER_OWNER)
        ]
        + [
            User(email=f"renter{n}@bench.test", name=f"Renter {n}", password=nobody_signs_in)
            for n in range(RENTERS)
        ]
    )
    owners, renters = users[: CARS // CARS_PER_OWNER], users[CARS // CARS_PER_OWNER :]
    cities, makes = list(CITIES), list(MAKES)
    cars = []
    for n in range(CARS):
        city = cities[n % len(cities)]
        lat, lng = CITIES[city]
        make = makes[(n // len(cities)) % len(makes)]
        hourly = Decimal(rng.randrange(400, 2500)) / 100
        cars.append(
            Car(
                owner=owners[n // CARS_PER_OWNER],
                make=make,
                model=rng.choice(MAKES[make]),
                year=rng.randrange(2016, 2026),
                licence_plate=f"BN{n:05d}",
                seats=rng.choice([4, 5, 5, 5, 7]),
                fuel_type=rng.choice(["petrol", "diesel", "electric", "hybrid"]),
                transmission=rng.choice(["manual", "automatic"]),
                address=f"Bench street {n}",
                city=city,
                latitude=Decimal(f"{lat + rng.uniform(-0.05, 0.05):.6f}"),
                longitude=Decimal(f"{lng + rng.uniform(-0.05, 0.05):.6f}"),
                hourly_price=hourly,
                daily_price=(hourly * 6).quantize(Decimal("0.01")),
                instant_book=rng.random() < 0.5,
            )
        )
    cars = Car.objects.bulk_create(cars, batch_size=2000)
    # Renters find only public cars (CarQuerySet.public): each gets a healthy connection row
    # granting lock and unlock, as Connect leaves it (no tokens: nothing here calls a car).
    # The Toyotas stay out of the results, as their make cannot be locked remotely.
    VehicleConnection.objects.bulk_create(
        [
            VehicleConnection(car=car, vehicle_id=f"bench-{car.pk}", scopes=[LOCK_PERMISSION])
            for car in cars
        ],
        batch_size=2000,
    )

    counts = {"cars": len(cars), "bookings": 0, "occupancies": 0}
    for chunk_start in range(0, len(cars), 500):
        bookings: list[Booking] = []
        for car in cars[chunk_start : chunk_start + 500]:
            at = now - datetime.timedelta(days=60, hours=rng.randrange(0, 48))
            for _ in range(BOOKINGS_PER_CAR):
                at = at.replace(minute=0, second=0, microsecond=0)
                starts = at + datetime.timedelta(hours=rng.randrange(2, 200))
                ends = starts + datetime.timedelta(hours=rng.randrange(2, 72))
                at = ends + BUFFER
                if ends <= now:
                    status = B.COMPLETED if rng.random() < 0.85 else B.CANCELLED
                else:
                    status = rng.choices(
                        [B.CONFIRMED, B.REQUESTED, B.CANCELLED], weights=[70, 15, 15]
                    )[0]
                respond_by = None
                if status == B.REQUESTED:
                    # A few requests are overdue but not swept yet: they still have an
                    # Occupancy row, past its expiry, which the search must ignore.
                    overdue = rng.random() < 0.05
                    respond_by = now + datetime.timedelta(
                        hours=-rng.randrange(1, 12) if overdue else rng.randrange(1, 12)
                    )
                bookings.append(
                    Booking(
                        car=car,
                        renter=rng.choice(renters),
                        period=(starts, ends),
                        status=status,
                        instant=car.instant_book,
                        hourly_rate=car.hourly_price,
                        daily_rate=car.daily_price,
                        price=car.daily_price,
                        respond_by=respond_by,
                    )
                )
        holding = [b for b in bookings if b.status in (B.REQUESTED, B.CONFIRMED)]
        occupancies = Occupancy.objects.bulk_create(
            [
                Occupancy(
                    car_id=b.car_id,
                    kind=OccupancyKind.TRIP,
                    period=(b.period[0], b.period[1] + BUFFER),
                    expires_at=b.respond_by,  # None once confirmed
                )
                for b in holding
            ],
            batch_size=5000,
        )
        for booking, occupancy in zip(holding, occupancies, strict=True):
            booking.occupancy = occupancy
        bookings = Booking.objects.bulk_create(bookings, batch_size=5000)
        counts["bookings"] += len(bookings)
        counts["occupancies"] += len(occupancies)
    connection.close()
    return counts


def _analyze(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --- What is measured -----------------------------------------------------------------------


def _search_window(now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """Tomorrow 10:00 to the day after at 18:00, Amsterdam time: a typical weekend trip."""
    tomorrow = (now.astimezone(AMSTERDAM) + datetime.timedelta(days=1)).date()
    start = datetime.datetime.combine(tomorrow, datetime.time(10), AMSTERDAM)
    return start, start + datetime.timedelta(days=1, hours=8)


def _urls(now: datetime.datetime) -> dict[str, str]:
    start, end = _search_window(now)
    page = {
        "available_from": start.strftime("%Y-%m-%dT%H:%M"),
        "available_to": end.strftime("%Y-%m-%dT%H:%M"),
        "city": "Amsterdam",
    }
    api = {"available_from": start.isoformat(), "available_to": end.isoformat()}
    return {
        "trivial": "/healthz",
        "browse": "/cars/?" + urlencode(page),
        # What changing a filter sends: htmx asks for the results region only.
        "browse_htmx": "/cars/?" + urlencode(page),
        "api": "/api/v1/cars?" + urlencode(api),
        # The same without dates: what the availability filter itself adds.
        "browse_nodates": "/cars/?" + urlencode({"city": "Amsterdam"}),
        "api_nodates": "/api/v1/cars",
    }


def _query_counts(now: datetime.datetime) -> dict[str, dict[str, int]]:
    """SQL queries per request, in-process against the seeded database: a page with one or
    two results against full pages (12 cards; 100 API results)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    start, end = _search_window(now)
    page_dates = {
        "available_from": start.strftime("%Y-%m-%dT%H:%M"),
        "available_to": end.strftime("%Y-%m-%dT%H:%M"),
    }
    api_dates = {"available_from": start.isoformat(), "available_to": end.isoformat()}
    few = {"city": "Utrecht", "make": "TESLA", "seats": "7", "max_price": "6"}
    cases = {
        "browse, few results": ("/cars/", {**page_dates, **few}),
        "browse, full page": ("/cars/", {**page_dates, "city": "Amsterdam"}),
        "api, few results": ("/api/v1/cars", {**api_dates, **few}),
        "api, 100 results": ("/api/v1/cars", {**api_dates, "limit": "100"}),
    }
    client = Client(HTTP_HOST="127.0.0.1")
    out = {}
    for name, (path, params) in cases.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, params)
        assert response.status_code == 200, (name, response.status_code)
        if path.startswith("/api"):
            shown = len(response.json()["results"])
        else:
            shown = response.content.decode().count('class="card"')
        out[name] = {"queries": len(queries), "results_shown": shown}
    return out


def _explain(now: datetime.datetime) -> str:
    """The plan of the API's page query, for the README when a figure looks wrong."""
    from django.db import connection

    from vehicles import selectors
    from vehicles.forms import CarSearchForm

    start, end = _search_window(now)
    form = CarSearchForm({"available_from": start.isoformat(), "available_to": end.isoformat()})
    assert form.is_valid(), form.errors
    cars = selectors.cars_search(filters=form.cleaned_data)[:20]
    sql, params = cars.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


HEADERS = {"browse_htmx": {"HX-Request": "true"}}


def _load(
    base: str, path: str, *, threads: int, seconds: float, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """`threads` clients, each sending requests one after another for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        http = requests.Session()
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            response = http.get(base + path, headers=headers, timeout=30)
            latencies[index].append(time.perf_counter() - t0)
            if response.status_code != 200:
                errors[index] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    flat = sorted(v for per_thread in latencies for v in per_thread)
    return {
        "rps": len(flat) / elapsed,
        "p50_ms": statistics.median(flat) * 1000,
        "p95_ms": flat[min(len(flat) - 1, round(0.95 * (len(flat) - 1)))] * 1000,
        "errors": sum(errors),
    }


def run(
    *, rounds: int, seconds: float, threads: int, workers: int = 2, keep: bool = False
) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC)
    web_port = free_port()
    with tempfile.TemporaryDirectory() as static_root:
        env = _environment(web_port, static_root)
        try:
            t0 = time.monotonic()
            seeded = _seed(env, now)
            _analyze(env["DATABASE_URL"])
            seeded["seed_seconds"] = round(time.monotonic() - t0)
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                cwd=ROOT, env=env, check=True,
            )  # fmt: skip
            queries = _query_counts(now)
            plan = _explain(now)
            from django.db import connection

            connection.close()
            server = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "gunicorn", "carshare.wsgi", "-w", str(workers),
                 "-b", f"127.0.0.1:{web_port}", "--log-level", "warning"],
                cwd=ROOT, env=env,
            )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{web_port}"
                benchlib.wait_http(base + "/healthz")
                urls = _urls(now)
                for name, path in urls.items():  # warm both workers' connections, templates
                    _load(base, path, threads=threads, seconds=1, headers=HEADERS.get(name))
                per_round: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
                for _ in range(rounds):
                    for name, path in urls.items():
                        per_round[name].append(
                            _load(
                                base,
                                path,
                                threads=threads,
                                seconds=seconds,
                                headers=HEADERS.get(name),
                            )
                        )
            finally:
                server.terminate()
                server.wait(timeout=20)
        finally:
            if not keep:
                benchlib.database_drop(BENCH_DB)

    results: dict[str, dict[str, float]] = {}
    for name, figures in per_round.items():
        results[name] = {
            "rps": round(statistics.median(f["rps"] for f in figures), 1),
            "p50_ms": round(statistics.median(f["p50_ms"] for f in figures), 1),
            "p95_ms": round(statistics.median(f["p95_ms"] for f in figures), 1),
            "errors": sum(f["errors"] for f in figures),
        }
    trivial = results["trivial"]
    for name in list(results)[1:]:
        results[name]["rps_ratio"] = round(results[name]["rps"] / trivial["rps"], 3)
        results[name]["p95_ratio"] = round(results[name]["p95_ms"] / trivial["p95_ms"], 1)
    return {
        "seeded": seeded,
        "urls": urls,
        "rounds": rounds,
        "seconds": seconds,
        "threads": threads,
        "workers": workers,
        "results": results,
        "queries": queries,
        "explain_api_page": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11))
    parser.add_argument("--seconds", type=float, default=10, help="per URL per round (≤ 60)")
    parser.add_argument("--threads", type=int, default=8, choices=range(1, 65))
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 17), help="gunicorn")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the API page's plan")
    parser.add_argument("--keep", action="store_true", help="keep the database to investigate")
    args = parser.parse_args()
    result = run(
        rounds=args.rounds,
        seconds=min(args.seconds, 60),
        threads=args.threads,
        workers=args.workers,
        keep=args.keep,
    )
    failed = any(r["errors"] for r in result["results"].values())
    if args.json:
        print(json.dumps(result))
        sys.exit(1 if failed else 0)
    seeded = result["seeded"]
    print(
        f"seeded {seeded['cars']:,} cars, {seeded['bookings']:,} bookings, "
        f"{seeded['occupancies']:,} occupancies in {seeded['seed_seconds']} s"
    )
    print(
        f"{result['threads']} client threads, {result['rounds']} rounds of {result['seconds']} s "
        "per URL (medians)"
    )
    print(
        f"{'':8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'x rps':>6} {'x p95':>6} {'errors':>6}"
    )
    for name, r in result["results"].items():
        print(
            f"{name:14} {r['rps']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r.get('rps_ratio', 1):>6} {r.get('p95_ratio', 1):>6} {r['errors']:>6}"
        )
    for name, path in result["urls"].items():
        print(f"  {name}: {path}")
    print("SQL queries per request:")
    for name, q in result["queries"].items():
        print(f"  {name:22} {q['queries']} queries, {q['results_shown']} results shown")
    if args.explain:
        print(result["explain_api_page"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
