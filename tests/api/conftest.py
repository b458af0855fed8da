"""Fixtures for the API tests: real session tokens from allauth headless."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import User

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
def stranger_auth(token_for, stranger) -> dict[str, str]:
    return token_for(stranger)
