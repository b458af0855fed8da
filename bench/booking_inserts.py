"""Booking creation throughput with the exclusion constraint against the same inserts without it.

The guarantee against double booking is `occupancy_car_never_double_booked`, a GiST exclusion
constraint on vehicles_occupancy (car =, period &&). This measures what it costs a write, in a
database of its own (created, migrated and dropped here), with the same machine and rows for both
sides, interleaved round by round:

  pair   one occupancy and its booking per transaction, committed each time, as booking_request
         writes them (SQL, no Django): the constraint's cost as a booking sees it.
  holds  occupancy rows only, 100 per transaction: the constraint's own cost (GiST index insert
         and the overlap probe), with commits and the booking row out of the way.
  service the whole services.booking_request (rules, expiry of overdue requests, availability
         check, price, occupancy, booking, event, instant confirmation, emails queued on
         commit) — fewer rows, to show the end-to-end rate.

"Without" is the same table with the exclusion constraint dropped for those runs and put back
after (on the emptied table, so that costs nothing measured): same columns, primary key, check
constraint, indexes and foreign keys. Every occupancy is for its own car and time (cars by 3 h
slots), so no insert is refused or waits on another. Each figure is the median of the rounds.

Needs PostgreSQL and Redis: run it through `make bench` (embedded servers) or with
DATABASE_URL / REDIS_URL set. Loopback only; stops by itself (a few minutes at the defaults).

    .venv/bin/python -m carshare.devservers -- .venv/bin/python bench/booking_inserts.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import benchlib  # noqa: E402

BENCH_DB = "carshare_bench_inserts"
BENCH_REDIS_DB = 13  # the service path queues emails; nothing consumes them, so it is flushed
CONSTRAINT = "occupancy_car_never_double_booked"
TABLE = "vehicles_occupancy"
SLOT = datetime.timedelta(hours=3)  # per car: a 2 h trip + the 30 min buffer fit in a slot
TRIP = datetime.timedelta(hours=2)
HOLD = TRIP + datetime.timedelta(minutes=30)


def _seed(env: dict[str, str], cars: int) -> tuple[list[int], int]:
    """Migrate, then `cars` listed instant-book cars with a healthy connection (one owner) and
    a renter allowed to book; returns (car ids, renter id)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from tests.factories import CarFactory, RenterFactory, UserFactory
    from vehicles.models import LOCK_PERMISSION, VehicleConnection

    owner = UserFactory(email="bench-owner@example.test")
    renter = RenterFactory(email="bench-renter@example.test")
    car_ids = []
    for n in range(cars):
        car = CarFactory(owner=owner)
        # A healthy connection granting lock and unlock is all booking_request checks (a car
        # must be public); no vehicle cloud is called.
        VehicleConnection.objects.create(
            car=car, vehicle_id=f"bench-{n}", mode="test", scopes=[LOCK_PERMISSION]
        )
        car_ids.append(car.pk)
    return car_ids, renter.pk


def _constraint_summary(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            f"{kind}:{name}"
            for name, kind in conn.execute(
                "SELECT conname, contype FROM pg_constraint WHERE conrelid = %s::regclass"
                " ORDER BY contype, conname",
                (TABLE,),
            )
        ]


def _reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"TRUNCATE bookings_bookingevent, bookings_booking, {TABLE} RESTART IDENTITY CASCADE"
        )


def _slots(n: int, car_ids: list[int], origin: datetime.datetime) -> list[tuple[int, Any]]:
    """n (car, start) pairs: car after car, then the next 3 h slot, so none overlap."""
    return [(car_ids[k % len(car_ids)], origin + (k // len(car_ids)) * SLOT) for k in range(n)]


def _run_workers(
    concurrency: int, work: list[Any], worker: Callable[[list[Any], threading.Barrier], None]
) -> float:
    """Split `work` round-robin over `concurrency` threads, release them together, and return
    the seconds until the last one finishes."""
    barrier = threading.Barrier(concurrency + 1)
    errors: list[BaseException] = []

    def run(share: list[Any]) -> None:
        try:
            worker(share, barrier)
        except BaseException as error:  # reported below: a failed run has no figure
            errors.append(error)
            barrier.abort()

    threads = [
        threading.Thread(target=run, args=(work[i::concurrency],)) for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()  # every worker has connected: start the clock
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


BOOKING_SQL = """
INSERT INTO bookings_booking (public_id, car_id, renter_id, period, status, instant, currency,
    hourly_rate, daily_rate, price, cancelled_by, requested_at, occupancy_id)
VALUES (gen_random_uuid(), %s, %s, tstzrange(%s, %s), 'confirmed', true, 'EUR', 8, 50, 16, '',
    now(), %s)
"""
OCCUPANCY_SQL = f"""
INSERT INTO {TABLE} (car_id, period, kind) VALUES (%s, tstzrange(%s, %s), %s) RETURNING id
"""  # noqa: S608 (our table name)


def _sql_pair(url: str, renter_id: int) -> Callable[[list[Any], threading.Barrier], None]:
    def worker(share: list[tuple[int, datetime.datetime]], barrier: threading.Barrier) -> None:
        with psycopg.connect(url) as conn:
            barrier.wait()
            for car_id, start in share:
                with conn.transaction():
                    (occupancy_id,) = conn.execute(
                        OCCUPANCY_SQL, (car_id, start, start + HOLD, "trip")
                    ).fetchone()
                    conn.execute(
                        BOOKING_SQL, (car_id, renter_id, start, start + TRIP, occupancy_id)
                    )

    return worker


def _sql_holds(url: str) -> Callable[[list[Any], threading.Barrier], None]:
    # Service windows: the one kind of occupancy whose owner row may come after it.
    def worker(share: list[tuple[int, int, datetime.datetime]], barrier: threading.Barrier) -> None:
        with psycopg.connect(url) as conn:
            barrier.wait()
            for i in range(0, len(share), 100):
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(
                        OCCUPANCY_SQL.replace(" RETURNING id", ""),
                        [
                            (car_id, start, start + HOLD, "service")
                            for _key, car_id, start in share[i : i + 100]
                        ],
                    )

    return worker


def _service(car_ids: list[int], renter_id: int) -> Callable[[list[Any], threading.Barrier], None]:
    from django.db import connection

    from accounts.models import User
    from bookings import services
    from vehicles.models import Car

    renter = User.objects.get(pk=renter_id)
    cars = Car.objects.in_bulk(car_ids)

    def worker(share: list[tuple[int, datetime.datetime]], barrier: threading.Barrier) -> None:
        try:
            connection.ensure_connection()  # this thread's own connection, before the clock
            barrier.wait()
            for car_id, start in share:
                services.booking_request(
                    renter=renter, car=cars[car_id], starts_at=start, ends_at=start + TRIP
                )
        finally:
            connection.close()

    return worker


def _set_constraint(url: str, *, present: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if present:
            conn.execute(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT {CONSTRAINT}"
                " EXCLUDE USING gist (car_id WITH =, period WITH &&)"
            )
        else:
            conn.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {CONSTRAINT}")


def run(*, n: int, service_n: int, cars: int, rounds: int) -> dict[str, Any]:
    url = benchlib.database_recreate(BENCH_DB)
    env = benchlib.production_environment(database_url=url, redis_db=BENCH_REDIS_DB)
    try:
        car_ids, renter_id = _seed(env, cars)
        constraints = _constraint_summary(url)
        origin = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)).replace(
            minute=0, second=0, microsecond=0
        )
        pair_work = _slots(n, car_ids, origin)
        hold_work = [(k, car, start) for k, (car, start) in enumerate(pair_work)]
        service_work = _slots(service_n, car_ids, origin)
        times: dict[str, list[float]] = {}

        def measure(
            workload: str, side: str, concurrency: int, work: list[Any], worker: Callable
        ) -> None:
            key = f"{workload}/{concurrency}/{side}"
            _reset(url)
            if side == "without":
                _set_constraint(url, present=False)
            try:
                seconds = _run_workers(concurrency, work, worker)
            finally:
                if side == "without":
                    _reset(url)  # the constraint goes back on an empty table
                    _set_constraint(url, present=True)
            times.setdefault(key, []).append(len(work) / seconds)
            print(f"  {key:28} {len(work) / seconds:10,.0f} /s", file=sys.stderr)

        # Warm-up, not counted: connections, plans, caches and the tables' first pages.
        for _ in range(2):
            _reset(url)
            _run_workers(1, pair_work[: n // 10], _sql_pair(url, renter_id))
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}", file=sys.stderr)
            # Alternate which side goes first, so neither always meets a warmer cache.
            sides = ["with", "without"] if round_ % 2 == 0 else ["without", "with"]
            for concurrency in (1, 4):
                for side in sides:
                    measure("pair", side, concurrency, pair_work, _sql_pair(url, renter_id))
                for side in sides:
                    measure("holds", side, concurrency, hold_work, _sql_holds(url))
                for side in sides:
                    measure("service", side, concurrency, service_work,
                            _service(car_ids, renter_id))  # fmt: skip
    finally:
        from django.apps import apps

        if apps.ready:
            from django.db import connections

            connections.close_all()
        benchlib.database_drop(BENCH_DB)
        _flush_redis(env["REDIS_URL"])

    results: dict[str, Any] = {}
    for workload in ("pair", "holds", "service"):
        for concurrency in (1, 4):
            with_ = statistics.median(times[f"{workload}/{concurrency}/with"])
            without = statistics.median(times[f"{workload}/{concurrency}/without"])
            # Both sides of a round ran back to back, so the per-round ratio sees the same
            # machine noise on either side; its median is the steadier figure on a busy host.
            per_round = [
                w / wo
                for w, wo in zip(
                    times[f"{workload}/{concurrency}/with"],
                    times[f"{workload}/{concurrency}/without"],
                    strict=True,
                )
            ]
            results[f"{workload}/{concurrency}"] = {
                "with_per_s": round(with_),
                "without_per_s": round(without),
                "ratio": round(with_ / without, 3),
                "ratio_per_round_median": round(statistics.median(per_round), 3),
            }
    return {
        "n": n,
        "service_n": service_n,
        "cars": cars,
        "rounds": rounds,
        "constraints": constraints,
        "results": results,
        "raw_per_s": {key: [round(v) for v in values] for key, values in times.items()},
    }


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()  # our own db number: only the emails the service path queued
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="SQL inserts per run (20,000)")
    parser.add_argument(
        "--service-n", type=int, default=1_000, help="booking_request calls (1,000)"
    )
    parser.add_argument("--cars", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(n=args.n, service_n=args.service_n, cars=args.cars, rounds=args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.cars} cars; SQL n={args.n}, service n={args.service_n}; median of {args.rounds}")
    print(
        f"{'workload':10} {'conns':>5} {'with /s':>10} {'without /s':>11} {'ratio':>6}"
        f" {'per-round ratio':>16}"
    )
    for key, figures in result["results"].items():
        workload, concurrency = key.split("/")
        print(
            f"{workload:10} {concurrency:>5} {figures['with_per_s']:>10,} "
            f"{figures['without_per_s']:>11,} {figures['ratio']:>6.3f}"
            f" {figures['ratio_per_round_median']:>16.3f}"
        )


if __name__ == "__main__":
    main()
