"""Security headers on every response: the pages and the JSON API alike."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PAGES_AND_API = ["vehicles:car_browse", "account_login", "api:car_list"]


def _policy(header: str) -> dict[str, str]:
    return dict(part.strip().split("=", 1) for part in header.split(","))


@pytest.mark.parametrize("url_name", PAGES_AND_API)
def test_csp_keeps_base_uri_to_the_site(client, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 200
    directives = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    assert "base-uri 'self'" in directives


@pytest.mark.parametrize("url_name", PAGES_AND_API)
def test_permissions_policy_allows_only_the_location_button(client, url_name):
    response = client.get(reverse(url_name))

    policy = _policy(response["Permissions-Policy"])
    assert policy.pop("geolocation") == "(self)"  # "Use my location" on browse and car forms
    for feature in ["camera", "microphone", "payment", "usb", "fullscreen", "autoplay"]:
        assert policy[feature] == "()"
    assert set(policy.values()) == {"()"}


def test_the_location_button_is_still_on_the_browse_page(client):
    # The one feature the policy allows is the one a page uses: drop this test and the
    # geolocation entry together.
    assert b"data-geolocate" in client.get(reverse("vehicles:car_browse")).content
