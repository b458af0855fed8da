"""Failed-login limits count per client address. Behind our TLS proxy every request comes from
the proxy's address, so the client is read from X-Forwarded-For, trusting only the entries our
own proxies added (CARSHARE_TRUSTED_PROXY_COUNT). Each case runs in a fresh interpreter, so the
setting is read from the environment as a deployment reads it."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.child import child_database_url, run_child, settings_in_child
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the child signs in against these rows

PROXY = "10.0.0.1"
# Ten wrong passwords from one client (each for another account, so only the per-address
# limit counts), then the right password from `then_from`: {"locked_out": ..., "signed_in": ...}.
_SIGN_IN_AFTER_TEN_FAILURES = """if True:
    import json, django
    django.setup()
    from django.test import Client
    from django.test.utils import override_settings, setup_test_environment
    from django.urls import reverse
    setup_test_environment()

    def sign_in(email, password, forwarded_for):
        client = Client(REMOTE_ADDR=%(proxy)r, HTTP_X_FORWARDED_FOR=forwarded_for)
        response = client.post(reverse("account_login"), {"login": email, "password": password})
        return response, client

    # The test database's users were saved with the test suite's fast hasher.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        for number, forwarded_for in enumerate(%(failures_from)r):
            sign_in(f"guess{number}@example.test", "wrong-guess", forwarded_for)
        response, client = sign_in("proxy@example.test", "correct-horse-battery", %(then_from)r)
    print(json.dumps({
        "locked_out": "Too many failed login attempts" in response.content.decode(),
        "signed_in": "_auth_user_id" in client.session,
    }))
"""


def _sign_in_after_ten_failures(*, failures_from: list[str], then_from: str, proxies: str):
    script = _SIGN_IN_AFTER_TEN_FAILURES % {
        "proxy": PROXY,
        "failures_from": failures_from,
        "then_from": then_from,
    }
    result = run_child(
        script,
        CARSHARE_TESTING="1",
        CARSHARE_TRUSTED_PROXY_COUNT=proxies,
        DATABASE_URL=child_database_url(),
        CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}",  # counters of this case only
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def person():
    return UserFactory(email="proxy@example.test")


def test_without_trusted_proxies_a_forged_forwarded_for_cannot_dodge_the_limit(person):
    # No proxy in front: X-Forwarded-For is whatever the client wrote, so it is ignored and
    # every attempt counts against REMOTE_ADDR.
    outcome = _sign_in_after_ten_failures(
        failures_from=[f"198.51.100.{n}" for n in range(10)], then_from="203.0.113.99", proxies="0"
    )

    assert outcome == {"locked_out": True, "signed_in": False}


def test_behind_one_proxy_one_clients_failures_do_not_lock_out_another(person):
    outcome = _sign_in_after_ten_failures(
        failures_from=["198.51.100.7"] * 10, then_from="203.0.113.20", proxies="1"
    )

    assert outcome == {"locked_out": False, "signed_in": True}


def test_behind_one_proxy_the_failing_client_is_still_limited(person):
    # What the client itself wrote in front of the proxy's entry is not believed either.
    outcome = _sign_in_after_ten_failures(
        failures_from=[f"192.0.2.{n}, 198.51.100.7" for n in range(10)],
        then_from="192.0.2.200, 198.51.100.7",
        proxies="1",
    )

    assert outcome == {"locked_out": True, "signed_in": False}


def test_trusted_proxies_and_client_ip_header_come_from_the_environment():
    names = ["ALLAUTH_TRUSTED_PROXY_COUNT", "ALLAUTH_TRUSTED_CLIENT_IP_HEADER"]

    assert settings_in_child(names) == dict.fromkeys(names, None) | {
        "ALLAUTH_TRUSTED_PROXY_COUNT": 0
    }
    assert settings_in_child(
        names, CARSHARE_TRUSTED_PROXY_COUNT="2", CARSHARE_TRUSTED_CLIENT_IP_HEADER="X-Real-IP"
    ) == {"ALLAUTH_TRUSTED_PROXY_COUNT": 2, "ALLAUTH_TRUSTED_CLIENT_IP_HEADER": "X-Real-IP"}
