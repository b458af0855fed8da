"""Personas and shared fixtures. Tests talk to real PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import User
from tests.factories import CarFactory, RenterFactory, UserFactory
from vehicles.models import Car


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
def car(owner: User) -> Car:
    return CarFactory(owner=owner)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def stranger_client(client, stranger):
    client.force_login(stranger)
    return client
