"""Personas and shared fixtures. Tests talk to real PostgreSQL and Redis.

Every persona is defined here, once; a test that needs someone different asks for a fixture
whose name says what differs (never a second `owner` or `technician`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from tests.factories import CarFactory, RenterFactory, UserFactory
from vehicles.models import Car

# Cars connected to the simulator (connected_car, sim_vehicle_id) and bookings in each state
# (requested_booking, confirmed_booking, active_booking, clock) for every test folder.
pytest_plugins = ["tests.vehicles.fixtures_cloud", "tests.bookings.fixtures_bookings"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Rate-limit tests fail a dozen logins; the production hasher makes each take ~0.5 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters live in Redis: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner(db) -> User:
    return UserFactory(email="owner@example.test", name="Olga Owner")


@pytest.fixture
def renter(db) -> User:
    return RenterFactory(email="renter@example.test", name="Rick Renter")


@pytest.fixture
def stranger(db) -> User:
    return UserFactory(email="stranger@example.test", name="Sam Stranger")


@pytest.fixture
def technician(db) -> User:
    """A registered, verified person the owner gives a service key to; nothing more (no
    driving licence: a service key needs none)."""
    return UserFactory(email="tech@example.test", name="Ted Technician")


@pytest.fixture
def co_driver(db) -> User:
    """A verified renter with a valid licence whom the renter can share the trip key with."""
    return RenterFactory(email="co@example.test", name="Cleo Codriver")


@pytest.fixture
def admin(db) -> User:
    """carshare's staff: signs in to the admin, revokes any key, hears about failed end locks."""
    return UserFactory(
        email="admin@example.test", name="Ada Admin", is_staff=True, is_superuser=True
    )


@pytest.fixture
def car(owner: User) -> Car:
    return CarFactory(owner=owner)


@pytest.fixture
def public_car(owner: User) -> Car:
    """The owner's car as renters find it: listed, with a healthy connection row (no simulator
    vehicle behind it, so nothing may call it; connected_car has one)."""
    return CarFactory(owner=owner, connected=True)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def renter_client(client, renter):
    client.force_login(renter)
    return client


@pytest.fixture
def stranger_client(client, stranger):
    client.force_login(stranger)
    return client


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


# --- The API's session tokens, from allauth headless ----------------------------------------

PASSWORD = "correct-horse-battery"  # what UserFactory gives every user


def session_token(client: Client, user: User) -> str:
    """Sign in as an app would and return the session token allauth hands out."""
    response = client.post(
        "/_allauth/app/v1/auth/login",
        {"email": user.email, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["meta"]["session_token"]


@pytest.fixture
def token_for(db) -> Callable[[User], dict[str, str]]:
    """Headers that authenticate as `user`, from a fresh client so no cookie tags along."""

    def headers(user: User) -> dict[str, str]:
        return {"X-Session-Token": session_token(Client(), user)}

    return headers


@pytest.fixture
def owner_auth(token_for, owner) -> dict[str, str]:
    return token_for(owner)


@pytest.fixture
def renter_auth(token_for, renter) -> dict[str, str]:
    return token_for(renter)


@pytest.fixture
def stranger_auth(token_for, stranger) -> dict[str, str]:
    return token_for(stranger)


# --- The vehicle cloud: the simulator as a real process ------------------------------------


@pytest.fixture(scope="session")
def _simulator_process(tmp_path_factory):
    from tests.simulation import SimProcess

    process = SimProcess(tmp_path_factory.mktemp("vehicle-cloud") / "simulator.db")
    yield process
    process.stop()


@pytest.fixture
def sim(_simulator_process, settings):
    """A fresh simulator world with the app's client registered, and the app pointed at it."""
    from tests.simulation import SimControl

    control = SimControl(_simulator_process.url)
    control.reset()
    settings.SMARTCAR_MODE = "simulator"
    settings.SMARTCAR_API_ORIGIN = _simulator_process.url
    settings.SMARTCAR_AUTH_ORIGIN = _simulator_process.url
    settings.SMARTCAR_CONNECT_ORIGIN = _simulator_process.url
    control.register_client(
        client_id=settings.SMARTCAR_CLIENT_ID,
        client_secret=settings.SMARTCAR_CLIENT_SECRET,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        management_token=settings.SMARTCAR_WEBHOOK_SECRET,
    )
    return control


@pytest.fixture
def celery_worker_thread(transactional_db):
    """A real Celery worker (threads pool) consuming from Redis, in this process so it uses the
    test database. Tests using it commit their data (transactional_db) so the worker sees it."""
    from celery.contrib.testing.worker import start_worker

    from carshare.celery import app

    # Messages left by earlier tests point at rows that no longer exist; drop them so this
    # test's worker only sees this test's work (and none is left for the next test).
    _purge_queues(app)
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, queues=["default", "vehicle"]
    ) as worker:
        yield worker
    _purge_queues(app)


def _purge_queues(app) -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ("default", "vehicle"):
            channel.queue_purge(queue)
