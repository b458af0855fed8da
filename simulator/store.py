"""State in memory, written through to SQLite on every change so it survives a restart.

The server runs on one asyncio loop and never awaits while it mutates state, so the dicts need
no lock; SQLite writes are short synchronous statements in WAL mode (no fsync per commit).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

KINDS = (
    "client",
    "account",
    "vehicle",
    "grant",
    "code",
    "access",
    "refresh",
    "webhook",
    "subscription",
)
COMMAND_LOG_LIMIT = 1000  # per vehicle, in memory and in GET /_sim/vehicles/{id}


def default_db_path() -> str:
    return os.environ.get("SIMULATOR_DB") or str(Path(".local") / "simulator" / "simulator.db")


class Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS objects ("
            " kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, id))"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS commands ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, vehicle_id TEXT NOT NULL, action TEXT NOT NULL,"
            " received_at TEXT NOT NULL, applied_at TEXT, result TEXT NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS commands_vehicle ON commands (vehicle_id, id)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.tables: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.clock_offset = 0.0
        self._load()

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> None:
        for kind, key, data in self.db.execute("SELECT kind, id, data FROM objects"):
            if kind in self.tables:
                self.tables[kind][key] = json.loads(data)
        # A command that was waiting out its latency when the process stopped never happened.
        self.db.execute("UPDATE commands SET result = 'interrupted' WHERE result = 'pending'")
        for row in self.db.execute(
            "SELECT id, vehicle_id, action, received_at, applied_at, result FROM commands ORDER BY id"
        ):
            log = self.commands.setdefault(row[1], [])
            log.append(
                {
                    "id": row[0],
                    "action": row[2],
                    "received_at": row[3],
                    "applied_at": row[4],
                    "result": row[5],
                }
            )
            if len(log) > COMMAND_LOG_LIMIT:
                del log[0]
        row = self.db.execute("SELECT value FROM meta WHERE key = 'clock_offset'").fetchone()
        self.clock_offset = float(row[0]) if row else 0.0

    # -- objects -----------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.tables[kind].get(key)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.tables[kind].values())

    def put(self, kind: str, key: str, obj: dict[str, Any]) -> None:
        self.tables[kind][key] = obj
        self.db.execute(
            "INSERT OR REPLACE INTO objects (kind, id, data) VALUES (?, ?, ?)",
            (kind, key, json.dumps(obj, separators=(",", ":"))),
        )

    def delete(self, kind: str, key: str) -> None:
        self.tables[kind].pop(key, None)
        self.db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, key))

    # -- command log ------------------------------------------------------------------------
    def command_add(self, vehicle_id: str, action: str, received_at: str) -> dict[str, Any]:
        cur = self.db.execute(
            "INSERT INTO commands (vehicle_id, action, received_at, result) VALUES (?, ?, ?, ?)",
            (vehicle_id, action, received_at, "pending"),
        )
        entry = {
            "id": cur.lastrowid,
            "action": action,
            "received_at": received_at,
            "applied_at": None,
            "result": "pending",
        }
        log = self.commands.setdefault(vehicle_id, [])
        log.append(entry)
        if len(log) > COMMAND_LOG_LIMIT:
            del log[0]
        return entry

    def command_finish(self, entry: dict[str, Any], *, result: str, applied_at: str | None) -> None:
        entry["result"] = result
        entry["applied_at"] = applied_at
        self.db.execute(
            "UPDATE commands SET result = ?, applied_at = ? WHERE id = ?",
            (result, applied_at, entry["id"]),
        )

    # -- clock -------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated epoch seconds: wall time plus the offset moved by POST /_sim/clock."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_offset', ?)",
            (repr(self.clock_offset),),
        )

    def reset(self) -> None:
        self.db.execute("DELETE FROM objects")
        self.db.execute("DELETE FROM commands")
        self.db.execute("DELETE FROM meta")
        self.tables = {kind: {} for kind in KINDS}
        self.commands = {}
        self.clock_offset = 0.0

    def close(self) -> None:
        self.db.close()
