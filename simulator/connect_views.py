"""The Connect pages: GET /oauth/authorize, then brand, sign in, and the grant form."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDict, MultiDictProxy

from simulator import catalog, pages
from simulator.app import SIM_KEY, Sim
from simulator.connect import (
    ConnectProblem,
    connect_complete,
    connect_session,
    eligible_vehicles,
    error_redirect,
    magic_vehicle,
    test_mode_vehicle,
)

SESSION_LIMIT = 10_000


async def _form(request: web.Request) -> MultiDictProxy[str | bytes | FileField]:
    """The posted form; a body that is not a form reads as an empty one."""
    try:
        return await request.post()
    except Exception:  # any parsing failure of a hand-made body: treat as nothing posted
        return MultiDictProxy(MultiDict())


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _redirect(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url})


def _app_name(session: dict[str, Any]) -> str:
    return session.get("client_id") or "An application"


def _session(request: web.Request) -> dict[str, Any]:
    sim = request.app[SIM_KEY]
    session = sim.connect_sessions.get(request.match_info["sid"])
    if session is None:
        raise web.HTTPNotFound()
    return session


def _session_gone() -> web.Response:
    msg = "This Connect session has expired or does not exist. Start again from the application."
    return _html(pages.error_page(msg, "Smartcar", None), status=404)


async def authorize(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    params = dict(request.query)
    try:
        session = connect_session(sim, params)
    except ConnectProblem as problem:
        partial = problem.session
        return_url = None
        if problem.return_ok and partial is not None:
            return_url = error_redirect(partial, "configuration_error")
        return _html(pages.error_page(problem.message, "Smartcar", return_url), status=400)
    sid = secrets.token_urlsafe(16)
    sim.connect_sessions[sid] = session
    while len(sim.connect_sessions) > SESSION_LIMIT:
        sim.connect_sessions.popitem(last=False)
    if session["make"] or session["single_select_vin"]:
        brand_name = session["make"] or "your vehicle's brand"
        return _html(pages.login_page(sid, _app_name(session), brand_name))
    return _html(pages.brand_page(sid, _app_name(session)))


async def brand(request: web.Request) -> web.Response:
    try:
        session = _session(request)
    except web.HTTPNotFound:
        return _session_gone()
    form = await _form(request)
    make = str(form.get("make", "")).upper()
    if make not in catalog.MAKES:
        return _html(pages.brand_page(request.match_info["sid"], _app_name(session)), status=400)
    session["make"] = make
    return _html(pages.login_page(request.match_info["sid"], _app_name(session), make))


async def login(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        session = _session(request)
    except web.HTTPNotFound:
        return _session_gone()
    sid = request.match_info["sid"]
    form = await _form(request)
    email = str(form.get("email", "")).strip().lower()
    password = str(form.get("password", ""))
    make = session.get("make") or "your vehicle's brand"
    if "@" not in email or not password:
        return _html(
            pages.login_page(
                sid, _app_name(session), make, "Enter your email and password.", email
            ),
            status=400,
        )
    session["email"] = email
    if email in catalog.CONNECT_ERROR_EMAILS:
        return _redirect(
            connect_complete(
                sim, session, email=email, decision="approve", vehicle_ids=None, granted=None
            )
        )
    magic_vehicle(sim, email, session)
    test_mode_vehicle(sim, email, session)
    eligible = eligible_vehicles(sim, session, email)
    if not eligible:
        return _redirect(error_redirect(session, "no_vehicles"))
    previous = _previous_approval(sim, session, email, eligible)
    if previous is not None:  # approval_prompt=auto and this scope was approved before
        sim.connect_sessions.pop(sid, None)
        return _redirect(
            connect_complete(
                sim, session, email=email, decision="approve", vehicle_ids=previous, granted=None
            )
        )
    return _html(
        pages.grant_page(
            sid,
            _app_name(session),
            eligible,
            session["scope"],
            single_select=session["single_select"],
        )
    )


def _previous_approval(
    sim: Sim, session: dict[str, Any], email: str, eligible: list[dict[str, Any]]
) -> list[str] | None:
    """The vehicles of an earlier grant covering this whole scope, when the prompt may be skipped."""
    if session.get("approval_prompt") != "auto":
        return None
    wanted = {name for name, _ in session["scope"]}
    allowed = {v["id"] for v in eligible}
    for grant_row in sorted(sim.store.all("grant"), key=lambda g: -g["created_at"]):
        if grant_row["client_id"] != session["client_id"] or grant_row["email"] != email:
            continue
        if not wanted <= set(grant_row["permissions"]):
            continue
        ids = [
            i
            for i in grant_row["vehicle_ids"]
            if i in allowed and i not in grant_row["disconnected"]
        ]
        if ids and (not session["single_select"] or len(ids) == 1):
            return ids
    return None


async def grant(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        session = _session(request)
    except web.HTTPNotFound:
        return _session_gone()
    sid = request.match_info["sid"]
    if "email" not in session:
        return _html(pages.login_page(sid, _app_name(session), session.get("make") or ""), 400)
    form = await _form(request)
    decision = str(form.get("decision", ""))
    vehicle_ids = [str(v) for v in form.getall("vehicle", [])]
    granted = [str(p) for p in form.getall("permission", [])]
    if decision == "approve" and not vehicle_ids:
        eligible = eligible_vehicles(sim, session, session["email"])
        return _html(
            pages.grant_page(
                sid,
                _app_name(session),
                eligible,
                session["scope"],
                single_select=session["single_select"],
                error="Select at least one vehicle.",
            ),
            status=400,
        )
    if decision not in ("approve", "deny"):
        decision = "deny"
    try:
        url = connect_complete(
            sim,
            session,
            email=session["email"],
            decision=decision,
            vehicle_ids=vehicle_ids if decision == "approve" else None,
            granted=granted,
        )
    except Exception:  # a tampered form: send the owner back to the app, as Connect would
        url = error_redirect(session, "configuration_error")
    sim.connect_sessions.pop(sid, None)
    return _redirect(url)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/oauth/authorize", authorize)
    r.add_post("/oauth/connect/{sid}/brand", brand)
    r.add_post("/oauth/connect/{sid}/login", login)
    r.add_post("/oauth/connect/{sid}/grant", grant)
