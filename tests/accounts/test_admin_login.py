"""The admin signs in through allauth, whose failed-login limits therefore guard it too."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import UserFactory

TOO_MANY = "Too many failed login attempts"


def sign_in(client, email: str, password: str):
    return client.post(reverse("account_login"), {"login": email, "password": password})


@pytest.fixture
def staff(db):
    return UserFactory(email="staff@example.test", is_staff=True, is_superuser=True)


@pytest.mark.django_db
def test_admin_login_sends_anonymous_visitors_to_the_allauth_login(client):
    response = client.get("/admin/login/")

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next=/admin/login/"


@pytest.mark.django_db
def test_admin_login_form_cannot_be_posted_to_directly(client, staff):
    response = client.post(
        "/admin/login/", {"username": "staff@example.test", "password": "correct-horse-battery"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_staff_signed_in_through_allauth_reach_the_admin(client, staff):
    response = client.post(
        f"{reverse('account_login')}?next=/admin/",
        {"login": "staff@example.test", "password": "correct-horse-battery"},
    )

    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_five_failed_logins_lock_the_account_even_for_the_right_password(client, staff):
    # ACCOUNT_RATE_LIMITS["login_failed"] allows 5 failures per address in 5 minutes.
    for _ in range(5):
        response = sign_in(client, "staff@example.test", "wrong-guess")
        assert response.status_code == 200
        assert TOO_MANY not in response.content.decode()

    response = sign_in(client, "staff@example.test", "correct-horse-battery")

    assert response.status_code == 200
    assert TOO_MANY in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_ten_failed_logins_from_one_address_lock_out_every_account(client, staff):
    # ...and 10 per IP a minute, so guessing across many accounts is slowed as well.
    for number in range(10):
        response = sign_in(client, f"guess{number}@example.test", "wrong-guess")
        assert TOO_MANY not in response.content.decode()

    response = sign_in(client, "staff@example.test", "correct-horse-battery")

    assert TOO_MANY in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_lockout_passes_once_the_window_has_gone_by(client, staff, time_machine):
    time_machine.move_to("2030-01-01 12:00:00Z")
    for _ in range(6):
        sign_in(client, "staff@example.test", "wrong-guess")

    time_machine.move_to("2030-01-01 12:06:00Z")
    response = sign_in(client, "staff@example.test", "correct-horse-battery")

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


@pytest.mark.django_db
def test_more_than_thirty_sign_in_posts_a_minute_from_one_address_get_429(client, staff):
    # ACCOUNT_RATE_LIMITS["login"] counts every attempt, failed or not, before the form runs.
    for number in range(30):
        assert sign_in(client, f"guess{number}@example.test", "wrong-guess").status_code == 200

    response = sign_in(client, "staff@example.test", "correct-horse-battery")

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
