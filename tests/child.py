"""A fresh interpreter with the settings a given environment makes, as a deployment reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from django.db import connection

from tests.simulation import ROOT

# Variables a developer's shell or CI may set that would change what a child reads.
_CLEARED = (
    "CARSHARE_SITE_URL",
    "CARSHARE_PORT",
    "CARSHARE_TRUSTED_PROXY_COUNT",
    "CARSHARE_TRUSTED_CLIENT_IP_HEADER",
    "CARSHARE_DISABLE_RATE_LIMITS",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "CARSHARE_TOKEN_KEYS",
    "CARSHARE_TESTING",
)


def run_child(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `script` under carshare.settings with os.environ (less the above) and `env`."""
    base = {
        name: value
        for name, value in os.environ.items()
        if name not in _CLEARED and not name.startswith("SMARTCAR_")
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and settings module
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "carshare.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_READ_SETTINGS = """if True:
    import json, django
    django.setup()
    from django.conf import settings
    print(json.dumps({name: getattr(settings, name, None) for name in %r}))
"""


def settings_in_child(names: list[str], **env: str) -> dict[str, Any]:
    """Settings as a test run (CARSHARE_TESTING) reads them from `env`."""
    result = run_child(_READ_SETTINGS % (names,), CARSHARE_TESTING="1", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def child_database_url() -> str:
    """This test's database, for a child under django_db(transaction=True)."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
