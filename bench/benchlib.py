"""What every benchmark here needs: its own throwaway database and production-like settings.

Benchmarks run on loopback only, against the PostgreSQL and Redis of DATABASE_URL / REDIS_URL
(or the embedded ones of `make bench`), each in a database it creates and drops itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import psycopg

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:15432/carshare"
DEFAULT_REDIS_URL = "redis://127.0.0.1:16379/0"


def _server_urls(name: str) -> tuple[str, str]:
    """(the server's admin database URL, the URL of database `name` on it); loopback only."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("benchmarks run against loopback databases only")
    return urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts._replace(path=f"/{name}"))


def database_recreate(name: str) -> str:
    """Drop and create database `name`; return its URL."""
    admin, url = _server_urls(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url


def database_drop(name: str) -> None:
    admin, _ = _server_urls(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def production_environment(*, database_url: str, redis_db: int, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, throwaway keys) on plain HTTP on loopback, with the
    simulator as the vehicle cloud, chosen by name and with a secret of its own (production
    takes neither a default cloud nor a development secret)."""
    import secrets

    from cryptography.fernet import Fernet

    redis = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.rsplit("/", 1)[0] + f"/{redis_db}",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": Fernet.generate_key().decode() * 2,
        "CARSHARE_TOKEN_KEYS": Fernet.generate_key().decode(),
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "CARSHARE_DISABLE_RATE_LIMITS": "1",
        "SMARTCAR_MODE": "simulator",
        "SMARTCAR_CLIENT_SECRET": secrets.token_urlsafe(24),
        "DJANGO_SETTINGS_MODULE": "carshare.settings",
        **extra,
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_http(url: str, seconds: float = 60) -> None:
    """Until the server answers at all; the first answer may be slow while it imports."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or still importing
            time.sleep(0.1)
    raise TimeoutError(url)


def procfile_commands(path: Path, names: list[str]) -> dict[str, str]:
    """The Procfile's command lines for `names`, run as honcho runs them (`sh -c`), so a
    benchmark runs exactly what production runs, environment assignments included."""
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() in names:
            commands[name.strip()] = command.strip()
    missing = set(names) - set(commands)
    if missing:
        raise SystemExit(f"{path}: no {', '.join(sorted(missing))} line")
    return commands


@contextlib.contextmanager
def processes(
    commands: dict[str, str], *, env: dict[str, str], cwd: Path, log_dir: Path
) -> Iterator[dict[str, Path]]:
    """Start each command line with `sh -c` (its output to log_dir/<name>.log), each in its own
    process group; stop them all on the way out. Yields the log paths, to search for errors."""
    venv_bin = str(Path(sys.executable).parent)
    env = {**env, "PATH": venv_bin + os.pathsep + env.get("PATH", "")}
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    logs = {name: log_dir / f"{name}.log" for name in commands}
    try:
        for name, command in commands.items():
            log = logs[name].open("wb")
            # Our own Procfile's lines, run from our own virtualenv.
            process = subprocess.Popen(  # noqa: S603
                ["/bin/sh", "-c", command],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            started.append((process, log))
        yield logs
    finally:
        for process, _ in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # the shell and the worker it started
        for process, log in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a worker stuck in a long call: it is throwaway
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()


def wait_for(predicate: Callable[[], bool], *, seconds: float, every: float = 1.0) -> bool:
    """Poll `predicate` until it holds or `seconds` pass; returns whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
