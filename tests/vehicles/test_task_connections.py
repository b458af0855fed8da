"""The vehicle worker holds no database connection while a car takes its time to answer, and
DATABASE_POOL_MAX_SIZE turns Django's connection pool on: hundreds of commands in flight must
not need hundreds of PostgreSQL connections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from tests.simulation import ROOT
from tests.vehicles.fixtures_cloud import connect_car
from vehicles import commands, tasks
from vehicles.models import CommandAction, CommandReason, CommandStatus

pytestmark = pytest.mark.django_db(transaction=True)  # the worker thread reads committed rows


def _other_backends() -> int:
    """Connections to the test database besides this thread's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _run_in_thread(command_id: int) -> threading.Thread:
    def work() -> None:
        try:
            tasks.run_vehicle_command(command_id=command_id)
        finally:
            connection.close()  # this thread's own connection, whatever the task left open

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_no_connection_is_held_while_the_car_answers(sim, car):
    vehicle_id = connect_car(sim, car, is_locked=True, latency_ms=3000)
    command = commands.vehicle_command_request(
        car=car, action=CommandAction.UNLOCK, reason=CommandReason.OWNER, actor=car.owner
    )
    before = _other_backends()
    worker = _run_in_thread(command.pk)
    deadline = time.monotonic() + 10
    while not sim.vehicle(vehicle_id)["commands"]:  # received: the car waits out its 3 s now
        assert time.monotonic() < deadline, "the command never reached the car"
        time.sleep(0.02)
    # A closed connection's backend leaves pg_stat_activity a moment later; one kept open
    # would stay for the whole 3 s.
    deadline = time.monotonic() + 1.5
    while (during := _other_backends()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.vehicle(vehicle_id)["commands"][0]["applied_at"] is None  # still in flight
    worker.join(timeout=30)
    command.refresh_from_db()

    assert during == before
    assert command.status == CommandStatus.SUCCEEDED
    assert command.confirmed_at is not None  # the confirmation read reconnected as needed


def _database_settings(**env: str) -> dict:
    """carshare.settings' DATABASES as a fresh process sees them with `env`, and the class of
    the pool its connection came from (a query is run through it)."""
    script = """if True:
        import json, django
        django.setup()
        from django.conf import settings
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        pool = connection.pool if "pool" in connection.settings_dict["OPTIONS"] else None
        database = settings.DATABASES["default"]
        print(json.dumps({
            "CONN_MAX_AGE": database["CONN_MAX_AGE"],
            "OPTIONS": database["OPTIONS"],
            "pool_class": type(pool).__name__ if pool else None,
        }))
    """
    result = subprocess.run(  # noqa: S603 - our own interpreter and settings module
        [sys.executable, "-c", script],
        cwd=ROOT,
        # CARSHARE_TESTING: test settings, as pytest itself runs with (no production secret key).
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "carshare.settings",
            "CARSHARE_TESTING": "1",
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_pool_is_off_unless_asked_for():
    database = _database_settings(DATABASE_POOL_MAX_SIZE="0")

    assert "pool" not in database["OPTIONS"]
    assert database["pool_class"] is None


def test_pool_size_replaces_persistent_connections():
    database = _database_settings(DATABASE_POOL_MAX_SIZE="20", DATABASE_POOL_TIMEOUT="7")

    assert database["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 20, "timeout": 7.0}
    assert database["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert database["pool_class"] == "ConnectionPool"  # psycopg-pool, installed and working
