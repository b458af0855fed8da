"""What the environment makes of the settings, read in a fresh interpreter as a deployment would:
the site's address and the port, and production's refusal to run on the simulator or a
development secret unless told."""

from __future__ import annotations

import pytest

from tests.child import child_database_url, run_child, settings_in_child

# --- The site's address follows the development server's port ------------------------------


def test_site_address_and_connect_redirect_follow_the_port():
    values = settings_in_child(
        ["SITE_URL", "SMARTCAR_REDIRECT_URI", "HEADLESS_FRONTEND_URLS"], CARSHARE_PORT="8123"
    )

    assert values["SITE_URL"] == "http://127.0.0.1:8123"
    assert values["SMARTCAR_REDIRECT_URI"] == "http://127.0.0.1:8123/connect/callback/"
    assert values["HEADLESS_FRONTEND_URLS"]["account_confirm_email"].startswith(
        "http://127.0.0.1:8123/accounts/confirm-email/"
    )


def test_an_explicit_site_address_wins_over_the_port():
    values = settings_in_child(
        ["SITE_URL", "SMARTCAR_REDIRECT_URI"],
        CARSHARE_PORT="8123",
        CARSHARE_SITE_URL="https://carshare.example",
    )

    assert values["SITE_URL"] == "https://carshare.example"
    assert values["SMARTCAR_REDIRECT_URI"] == "https://carshare.example/connect/callback/"


def test_the_default_port_is_8000():
    assert settings_in_child(["SITE_URL"])["SITE_URL"] == "http://127.0.0.1:8000"


_APP_SIGN_UP = """if True:
    import django
    django.setup()
    from django.core import mail
    from django.test import Client
    from django.test.utils import setup_test_environment
    setup_test_environment()  # the in-memory outbox, and the test client's host allowed
    response = Client().post(
        "/_allauth/app/v1/auth/signup",
        {"email": "port@example.test", "password": "a-long-pass-phrase-8123"},
        content_type="application/json",
    )
    assert response.status_code == 401, response.content  # pending: verify the email
    print(mail.outbox[0].body)
"""


@pytest.mark.django_db(transaction=True)  # the child signs up in this test's database
def test_sign_up_verification_email_links_to_the_port_in_use():
    result = run_child(
        _APP_SIGN_UP, CARSHARE_TESTING="1", CARSHARE_PORT="8123", DATABASE_URL=child_database_url()
    )

    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8123/accounts/confirm-email/" in result.stdout
    assert "127.0.0.1:8000" not in result.stdout
