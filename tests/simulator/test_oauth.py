"""Connect pages driven over plain HTTP, and the token endpoint's rules (reference §1)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.simulator.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI


def authorize(sim, **params):
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "read_odometer required:control_security",
        "state": "st",
        "mode": "simulated",
        **params,
    }
    return sim.get("/oauth/authorize?" + urlencode(query), allow_redirects=False)


def form_action(html: str) -> str:
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


def callback(response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return parse_qs(urlsplit(location).query)


def sign_in(sim, email="owner@example.test", **params):
    page = authorize(sim, **params)
    assert page.status_code == 200, page.text
    if "Select your brand" in page.text:
        page = sim.post(form_action(page.text), data={"make": "FORD"}, allow_redirects=False)
    assert "Sign in" in page.text
    return sim.post(
        form_action(page.text), data={"email": email, "password": "pw"}, allow_redirects=False
    )


def test_full_connect_flow_returns_code_and_state(sim, car):
    grant_page = sign_in(sim)
    assert grant_page.status_code == 200
    assert car["vin"] in grant_page.text
    assert "<script" not in grant_page.text
    response = sim.post(
        form_action(grant_page.text),
        data={"vehicle": car["id"], "permission": ["control_security"], "decision": "approve"},
        allow_redirects=False,
    )
    query = callback(response)
    assert query["state"] == ["st"]
    tokens = sim.token(
        grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT_URI
    )
    assert tokens.status_code == 200
    access = tokens.json()["access_token"]
    perms = sim.api("GET", f"/vehicles/{car['id']}/permissions", access).json()
    assert perms["permissions"] == ["control_security"]  # read_odometer was unticked


def test_deny_returns_access_denied(sim, car):
    grant_page = sign_in(sim)
    response = sim.post(
        form_action(grant_page.text), data={"decision": "deny"}, allow_redirects=False
    )
    assert response.headers["Location"] == (
        REDIRECT_URI
        + "?error=access_denied&error_description=User+denied+access+to+application.&state=st"
    )


def test_make_bypasses_brand_selection(sim, car):
    page = authorize(sim, make="FORD")
    assert "Sign in" in page.text
    assert "Select your brand" not in page.text


def test_single_select_vin_limits_the_choice(sim, car):
    other = sim.vehicle(model="Kuga")
    page = sign_in(sim, single_select="true", single_select_vin=other["vin"])
    assert other["vin"] in page.text
    assert car["vin"] not in page.text
    assert 'type="radio"' in page.text


def test_no_vehicles_for_unknown_account(sim, car):
    query = callback(sign_in(sim, email="nobody@example.test"))
    assert query["error"] == ["no_vehicles"]
    assert query["state"] == ["st"]


def test_no_vehicles_of_that_brand(sim, car):
    query = callback(sign_in(sim, make="TESLA"))
    assert query["error"] == ["no_vehicles"]


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("smartcar@invalid-subscription.com", "invalid_subscription"),
        ("smartcar@vehicle-incompatible.com", "vehicle_incompatible"),
        ("smartcar@server-error.com", "server_error"),
    ],
)
def test_magic_emails(sim, email, error):
    query = callback(sign_in(sim, email=email))
    assert query["error"] == [error]
    if error == "vehicle_incompatible":
        assert query["vin"] == ["0SCAUDI012FE3B132"]
        assert query["make"] == ["AUDI"]
        assert query["year"] == ["2015"]


def test_required_permission_the_car_lacks_is_vehicle_incompatible(sim):
    toyota = sim.vehicle(make="TOYOTA", model="Corolla", owner_email="t@example.test")
    code_url = sim.post(
        "/_sim/connect",
        {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "required:control_security",
            "owner_email": "t@example.test",
            "decision": "approve",
        },
    ).json()["redirect_url"]
    query = parse_qs(urlsplit(code_url).query)
    assert query["error"] == ["vehicle_incompatible"]
    assert query["vin"] == [toyota["vin"]]
    assert query["model"] == ["Corolla"]


def test_api_error_email_gets_a_failing_car(sim):
    tokens = sim.tokens(email="VEHICLE_STATE.DOOR_OPEN@smartcar.com")
    vehicles = sim.api("GET", "/vehicles", tokens["access_token"]).json()["vehicles"]
    assert len(vehicles) == 1
    response = sim.api(
        "POST", f"/vehicles/{vehicles[0]}/security", tokens["access_token"], json={"action": "LOCK"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "DOOR_OPEN"
    vin = sim.api("GET", f"/vehicles/{vehicles[0]}/vin", tokens["access_token"]).json()
    assert vin == {"vin": "0SCLR0002F8BD90B8"}  # static endpoints are not affected


def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(sim, car):
    response = authorize(sim, redirect_uri="http://evil.test/cb")
    assert response.status_code == 400
    assert "evil.test" not in response.headers.get("Location", "")
    assert "Return to application" not in response.text
    assert authorize(sim, client_id="nope").status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"response_type": "token"},
        {"scope": "read_everything"},
        {"mode": "prod"},
        {"approval_prompt": "x"},
    ],
)
def test_bad_parameters_offer_configuration_error(sim, car, params):
    response = authorize(sim, **params)
    assert response.status_code == 400
    link = re.search(r'href="([^"]+)"', response.text).group(1).replace("&amp;", "&")
    query = parse_qs(urlsplit(link).query)
    assert query["error"] == ["configuration_error"]
    assert query["state"] == ["st"]


def test_expired_connect_session(sim):
    response = sim.post("/oauth/connect/nope/login", data={"email": "a@b.c", "password": "x"})
    assert response.status_code == 404
    assert "expired" in response.text


# -- tokens -----------------------------------------------------------------------------------
def test_token_response_has_exactly_the_documented_fields(sim, car):
    response = sim.token(
        grant_type="authorization_code", code=sim.code(), redirect_uri=REDIRECT_URI
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200


def test_code_is_single_use(sim, car):
    code = sim.code()
    assert sim.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI).ok
    again = sim.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": f"Invalid code: {code}."}


def test_code_expires_after_ten_minutes(sim, car):
    code = sim.code()
    sim.advance(601)
    response = sim.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_code_redirect_uri_must_match(sim, car):
    code = sim.code()
    response = sim.token(grant_type="authorization_code", code=code, redirect_uri="http://x.test/")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_bad_client_credentials(sim, car):
    code = sim.code()
    for auth in [(CLIENT_ID, "wrong"), ("nobody", CLIENT_SECRET)]:
        response = sim.http.post(
            sim.url + "/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
            auth=auth,
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    no_auth = sim.http.post(sim.url + "/oauth/token", data={"grant_type": "authorization_code"})
    assert no_auth.status_code == 401
    garbage = sim.http.post(
        sim.url + "/oauth/token", data={}, headers={"Authorization": "Basic %%%"}
    )
    assert garbage.status_code == 401


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        (
            {"grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT_URI},
            "invalid_grant",
        ),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ],
)
def test_token_errors(sim, form, error):
    response = sim.token(**form)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error


def test_json_body_is_refused(sim):
    response = sim.http.post(
        sim.url + "/oauth/token",
        json={"grant_type": "refresh_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_refresh_rotates_and_grace_period(sim, car):
    first = sim.tokens()
    second = sim.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    second = second.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    sim.advance(50)
    retry = sim.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert retry.status_code == 200  # within the minute after use
    sim.advance(11)
    late = sim.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert late.status_code == 400
    assert late.json() == {
        "error": "invalid_grant",
        "error_description": f"Invalid refresh_token: {first['refresh_token']}.",
    }
    assert sim.token(grant_type="refresh_token", refresh_token=second["refresh_token"]).ok


def test_access_token_lives_two_hours(sim, car):
    access = sim.tokens()["access_token"]
    sim.advance(7190)
    assert sim.api("GET", "/user", access).status_code == 200
    sim.advance(11)
    assert sim.api("GET", "/user", access).status_code == 401


def test_refresh_token_lives_sixty_days(sim, car):
    tokens = sim.tokens()
    sim.advance(60 * 86400 - 10)
    assert sim.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).ok
    other = sim.tokens()
    sim.advance(60 * 86400 + 1)
    assert (
        sim.token(grant_type="refresh_token", refresh_token=other["refresh_token"]).status_code
        == 400
    )


def test_approval_prompt_auto_skips_an_approved_scope(sim, car):
    first = sign_in(sim)
    callback(
        sim.post(
            form_action(first.text),
            data={"vehicle": car["id"], "permission": ["read_odometer"], "decision": "approve"},
            allow_redirects=False,
        )
    )
    again = sign_in(sim, approval_prompt="auto")
    assert "code" in callback(again)  # straight back to the app
    forced = sign_in(sim, approval_prompt="force")
    assert forced.status_code == 200
    assert "Grant access" in forced.text


def test_tesla_without_virtual_key_gets_the_key_link(sim):
    tesla = sim.vehicle(make="TESLA", model="Model S", virtual_key=False)
    url = sim.post(
        "/_sim/connect",
        {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "control_security",
            "owner_email": tesla["owner_email"],
            "decision": "approve",
        },
    ).json()["redirect_url"]
    query = parse_qs(urlsplit(url).query)
    assert query["virtual_key_url"] == ["https://www.tesla.com/_ak/smartcar.com"]
    assert "code" in query


def test_redirect_uri_may_be_left_out_when_connect_had_none(sim, car):
    url = sim.post(
        "/_sim/connect",
        {
            "client_id": CLIENT_ID,
            "scope": "read_odometer",
            "owner_email": car["owner_email"],
            "decision": "approve",
        },
    ).json()["redirect_url"]
    assert url.startswith(REDIRECT_URI + "?")  # the client's registered URI
    code = parse_qs(urlsplit(url).query)["code"][0]
    assert sim.token(grant_type="authorization_code", code=code).status_code == 200
    with_uri = sim.code()
    assert sim.token(grant_type="authorization_code", code=with_uri).status_code == 400


def test_test_mode_signs_any_email_in_to_a_test_car(sim):
    page = sign_in(sim, email="anyone@example.test", mode="test", make="KIA")
    assert page.status_code == 200
    assert "VIN 0SC" in page.text
    response = sim.post(
        form_action(page.text),
        data={
            "vehicle": re.search(r'name="vehicle" value="([^"]+)"', page.text).group(1),
            "permission": ["read_odometer", "control_security"],
            "decision": "approve",
        },
        allow_redirects=False,
    )
    code = callback(response)["code"][0]
    access = sim.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI
    ).json()["access_token"]
    (vehicle_id,) = sim.api("GET", "/vehicles", access).json()["vehicles"]
    assert sim.api("GET", f"/vehicles/{vehicle_id}/odometer", access).status_code == 200
    live = callback(sign_in(sim, email="someone-else@example.test", mode="live"))
    assert live["error"] == ["no_vehicles"]  # only test mode invents cars
