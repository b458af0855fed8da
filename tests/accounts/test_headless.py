"""allauth's headless API as a phone app uses it: the "app" client and X-Session-Token."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress

from tests.accounts.helpers import confirmation_key_in, link_in
from tests.factories import UserFactory

APP = "/_allauth/app/v1"
PASSWORD = "a-long-and-unusual-passphrase"


def app_post(client, path: str, body: dict[str, Any], token: str | None = None):
    headers = {"X-Session-Token": token} if token else {}
    return client.post(f"{APP}{path}", body, content_type="application/json", headers=headers)


def app_session(client, token: str | None):
    headers = {"X-Session-Token": token} if token else {}
    return client.get(f"{APP}/auth/session", headers=headers)


def pending_flows(payload: dict[str, Any]) -> list[str]:
    return [flow["id"] for flow in payload["data"]["flows"] if flow.get("is_pending")]


@pytest.mark.django_db
def test_app_sign_up_sends_a_verification_email_and_waits_for_it(client, mailoutbox):
    response = app_post(client, "/auth/signup", {"email": "app@example.test", "password": PASSWORD})

    assert response.status_code == 401
    payload = response.json()
    assert payload["meta"]["is_authenticated"] is False
    assert pending_flows(payload) == ["verify_email"]
    assert payload["meta"]["session_token"]  # carries the pending sign-up to the verify call
    [message] = mailoutbox
    assert message.to == ["app@example.test"]


@pytest.mark.django_db
def test_app_verifies_with_the_emailed_key_and_is_signed_in(client, mailoutbox):
    signup = app_post(client, "/auth/signup", {"email": "app@example.test", "password": PASSWORD})
    pending_token = signup.json()["meta"]["session_token"]

    response = app_post(
        client, "/auth/email/verify", {"key": confirmation_key_in(mailoutbox[0])}, pending_token
    )

    assert response.status_code == 200
    payload = response.json()
    assert payload["meta"]["is_authenticated"] is True
    assert payload["data"]["user"]["email"] == "app@example.test"
    assert EmailAddress.objects.get(email="app@example.test").verified
    assert app_session(client, payload["meta"]["session_token"]).status_code == 200


@pytest.mark.django_db
def test_app_sign_up_link_also_verifies_on_the_web_page(client, mailoutbox):
    # HEADLESS_FRONTEND_URLS points the emailed link at our own confirm page, so an address
    # can be verified from a laptop's mail client as well as in the app.
    app_post(client, "/auth/signup", {"email": "app@example.test", "password": PASSWORD})
    client.cookies.clear()

    response = client.post(link_in(mailoutbox[0], "/confirm-email/"))

    assert response.status_code == 302
    assert EmailAddress.objects.get(email="app@example.test").verified


@pytest.mark.django_db
def test_app_verify_refuses_a_wrong_key(client, mailoutbox):
    signup = app_post(client, "/auth/signup", {"email": "app@example.test", "password": PASSWORD})

    response = app_post(
        client, "/auth/email/verify", {"key": "not-a-key"}, signup.json()["meta"]["session_token"]
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_or_expired_key"
    assert not EmailAddress.objects.get(email="app@example.test").verified


@pytest.mark.django_db
def test_app_sign_in_before_verifying_gets_no_session(client, mailoutbox):
    app_post(client, "/auth/signup", {"email": "app@example.test", "password": PASSWORD})

    response = app_post(client, "/auth/login", {"email": "app@example.test", "password": PASSWORD})

    assert response.status_code == 401
    assert response.json()["meta"]["is_authenticated"] is False
    assert pending_flows(response.json()) == ["verify_email"]


@pytest.mark.django_db
def test_app_sign_in_returns_a_session_token_that_authenticates(client):
    UserFactory(email="member@example.test")

    response = app_post(
        client, "/auth/login", {"email": "member@example.test", "password": "correct-horse-battery"}
    )

    assert response.status_code == 200
    token = response.json()["meta"]["session_token"]
    client.cookies.clear()  # an app sends the token, not a session cookie
    session = app_session(client, token)
    assert session.status_code == 200
    assert session.json()["data"]["user"]["email"] == "member@example.test"


@pytest.mark.django_db
def test_app_session_without_a_token_is_anonymous(client):
    response = app_session(client, None)

    assert response.status_code == 401
    assert response.json()["meta"]["is_authenticated"] is False


@pytest.mark.django_db
def test_app_sign_in_with_a_wrong_password_is_refused(client):
    UserFactory(email="member@example.test")

    response = app_post(
        client, "/auth/login", {"email": "member@example.test", "password": "not-the-password"}
    )

    assert response.status_code == 400
    assert "session_token" not in response.json().get("meta", {})


@pytest.mark.django_db
def test_app_sign_out_ends_the_token(client):
    UserFactory(email="member@example.test")
    login = app_post(
        client, "/auth/login", {"email": "member@example.test", "password": "correct-horse-battery"}
    )
    token = login.json()["meta"]["session_token"]

    response = client.delete(f"{APP}/auth/session", headers={"X-Session-Token": token})

    assert response.status_code == 401
    assert app_session(client, token).status_code == 410  # allauth: the session is gone
