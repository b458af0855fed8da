"""`python -m simulator [--host H] [--port P] [--seed FILE.json]`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from aiohttp import web

from simulator.app import create_app, load_env_clients
from simulator.catalog import LATENCY_PROFILES
from simulator.store import Store, default_db_path


def seed(store: Store, path: str) -> None:
    """Register clients and create vehicles from a JSON file, skipping those that exist."""
    from simulator.app import Sim
    from simulator.control import client_upsert
    from simulator.vehicles import vehicle_new

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    sim = Sim(store)
    for client in data.get("clients", []):
        client_upsert(sim, client)
    vins = {v["vin"] for v in store.all("vehicle")}
    for spec in data.get("vehicles", []):
        if spec.get("vin", "").upper() in vins or store.get("vehicle", spec.get("id", "")):
            continue
        spec = {"latency_profile": sim.default_latency_profile, **spec}
        vehicle = vehicle_new(spec, now=store.now(), existing_vins=vins)
        sim.account_ensure(vehicle["owner_email"])
        store.put("vehicle", vehicle["id"], vehicle)
        vins.add(vehicle["vin"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SIMULATOR_PORT", "8100")))
    parser.add_argument("--db", default=default_db_path(), help="SQLite file (env SIMULATOR_DB)")
    parser.add_argument("--seed", help="JSON file with {clients: [...], vehicles: [...]}")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    profile = os.environ.get("SIMULATOR_LATENCY_PROFILE") or "instant"
    if profile not in LATENCY_PROFILES:
        print(
            f"SIMULATOR_LATENCY_PROFILE must be one of {', '.join(LATENCY_PROFILES)}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = Store(args.db)
    if args.seed:
        seed(store, args.seed)
    try:
        env_clients = load_env_clients()
    except ValueError as exc:
        print(f"SIMULATOR_CLIENTS is not valid JSON: {exc}", file=sys.stderr)
        return 2
    app = create_app(store, env_clients)
    print(f"simulator listening on http://{args.host}:{args.port} (db {args.db})", flush=True)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        shutdown_timeout=2.0,  # commands waiting out their latency are dropped on exit
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
