"""The Smartcar client against the simulator over HTTP: every call, every error class."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from tests.simulation import SimControl, free_port
from vehicles.cloud import provider
from vehicles.cloud.provider import CONNECT_SCOPES, Tokens
from vehicles.cloud.smartcar import POOL_MAXSIZE, SmartcarClient, error_from_response


def connect_vehicle(
    sim: SimControl, settings: Any, *, scope: list[str] | None = None, **vehicle: Any
) -> tuple[dict[str, Any], Tokens]:
    """A simulator car, granted to our app through headless Connect, and its first tokens."""
    car = sim.add_vehicle(**vehicle)
    query = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope=" ".join(scope or CONNECT_SCOPES),
        owner_email=car["owner_email"],
        state="s1",
        vehicle_ids=[car["id"]],
    )
    tokens = SmartcarClient.from_settings().exchange_code(code=query["code"][0])
    return car, tokens


@pytest.fixture
def cloud(sim) -> SmartcarClient:
    return SmartcarClient.from_settings()


def test_from_settings_shares_one_pooled_session_with_explicit_timeouts(sim, settings):
    settings.VEHICLE_CLOUD_CONNECT_TIMEOUT = 2.5
    settings.VEHICLE_CLOUD_READ_TIMEOUT = 30
    first, second = SmartcarClient.from_settings(), SmartcarClient.from_settings()
    assert first.session is second.session
    assert first.session.get_adapter(first.api_url).poolmanager.connection_pool_kw["maxsize"] == (
        POOL_MAXSIZE
    )
    assert first.timeout == (2.5, 30)
    assert first.api_url == sim.url + "/v2.0"
    assert first.token_url == sim.url + "/oauth/token"
    assert first.connect_url == sim.url + "/oauth/authorize"


def test_authorize_url_asks_for_carshares_scopes(cloud, settings):
    url = cloud.authorize_url(state="abc", make="TESLA", vin="5YJ3E1EA7KF000001", force=True)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == cloud.connect_url
    assert query == {
        "response_type": "code",
        "client_id": settings.SMARTCAR_CLIENT_ID,
        "redirect_uri": settings.SMARTCAR_REDIRECT_URI,
        "scope": " ".join(CONNECT_SCOPES),
        "state": "abc",
        "mode": "live",
        "approval_prompt": "force",
        "make": "TESLA",
        "single_select": "true",
        "single_select_vin": "5YJ3E1EA7KF000001",
    }
    # The simulator's Connect accepts it: a sign-in page, not its error page.
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert "configuration_error" not in page.text


@pytest.mark.parametrize(("mode", "sent"), [("test", "test"), ("simulated", "simulated")])
def test_authorize_url_passes_smartcars_test_modes(cloud, mode, sent):
    cloud.mode = mode
    query = parse_qs(urlsplit(cloud.authorize_url(state="x")).query)
    assert query["mode"] == [sent]
    assert query["approval_prompt"] == ["auto"]
    assert "single_select" not in query


def test_exchange_code_and_refresh_give_tokens_with_expiry(sim, settings, cloud):
    before = timezone.now()
    _, tokens = connect_vehicle(sim, settings)
    assert tokens.access_expires_at - before >= datetime.timedelta(seconds=7200) - (
        datetime.timedelta(seconds=5)
    )
    assert tokens.access_expires_at <= timezone.now() + datetime.timedelta(seconds=7200)
    assert abs(tokens.refresh_expires_at - (before + datetime.timedelta(days=60))) < (
        datetime.timedelta(seconds=5)
    )

    refreshed = cloud.refresh(refresh_token=tokens.refresh_token)
    # Smartcar rotates both tokens on refresh.
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token != tokens.refresh_token
    assert cloud.vehicle_ids(access_token=refreshed.access_token)


def test_a_spent_code_is_an_oauth_error(sim, settings, cloud):
    car = sim.add_vehicle()
    code = sim.consent(
        client_id=settings.SMARTCAR_CLIENT_ID,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
        scope="read_vehicle_info",
        owner_email=car["owner_email"],
        vehicle_ids=[car["id"]],
    )["code"][0]
    cloud.exchange_code(code=code)
    with pytest.raises(provider.OAuthError) as caught:
        cloud.exchange_code(code=code)  # single use
    assert (caught.value.type, caught.value.status) == ("invalid_grant", 400)
    assert code in caught.value.message


def test_wrong_client_secret_is_an_oauth_error(sim, settings):
    settings.SMARTCAR_CLIENT_SECRET = "not-the-secret"
    with pytest.raises(provider.OAuthError) as caught:
        SmartcarClient.from_settings().refresh(refresh_token="whatever")
    assert (caught.value.type, caught.value.status) == ("invalid_client", 401)


def test_every_read_round_trips(sim, settings, cloud):
    car, tokens = connect_vehicle(
        sim, settings, powertrain="PHEV", odometer_km=12345.6, fuel_percent=40, battery_percent=80
    )
    auth = {"access_token": tokens.access_token, "vehicle_id": car["id"]}

    assert cloud.vehicle_ids(access_token=tokens.access_token) == [car["id"]]
    attributes = cloud.attributes(**auth)
    assert (attributes.vehicle_id, attributes.make, attributes.model, attributes.year) == (
        car["id"],
        "VOLKSWAGEN",
        "Golf",
        2021,
    )
    assert attributes.meta.request_id
    assert cloud.vin(**auth) == car["vin"]
    assert set(cloud.permissions(**auth)) == {s.removeprefix("required:") for s in CONNECT_SCOPES}

    location = cloud.location(**auth)
    assert (location.latitude, location.longitude) == pytest.approx((52.374, 4.898))
    assert location.meta.data_age is not None
    assert location.meta.data_age.tzinfo is not None
    assert location.meta.fetched_at is not None
    assert cloud.odometer(**auth).distance_km == pytest.approx(12345.6)
    assert cloud.fuel(**auth).percent == pytest.approx(40)
    battery = cloud.battery(**auth)
    assert battery.percent == pytest.approx(80)
    assert battery.range_km is None or battery.range_km > 0


def test_lock_and_unlock_reach_the_car_and_lock_status_reports_doors(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings, is_locked=False)
    auth = {"access_token": tokens.access_token, "vehicle_id": car["id"]}

    ack = cloud.lock(**auth)
    assert ack.message == "Successfully sent request to vehicle"
    assert ack.meta.request_id
    assert sim.vehicle(car["id"])["is_locked"] is True
    status = cloud.lock_status(**auth)
    assert (status.is_locked, status.doors_open) == (True, False)

    cloud.unlock(**auth)
    sim.set_state(car["id"], doors_open=True)
    status = cloud.lock_status(**auth)
    assert (status.is_locked, status.doors_open) == (False, True)


def test_disconnect_revokes_the_token_for_the_car(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings)
    cloud.disconnect(access_token=tokens.access_token, vehicle_id=car["id"])
    with pytest.raises(provider.AuthenticationFailed) as caught:
        cloud.attributes(access_token=tokens.access_token, vehicle_id=car["id"])
    assert (caught.value.type, caught.value.status) == ("AUTHENTICATION", 401)
    assert cloud.vehicle_ids(access_token=tokens.access_token) == []


FAULTS = [
    # (fault endpoint, type, code, expected class, status)
    ("security", "RATE_LIMIT", "VEHICLE", provider.RateLimited, 429),
    ("security", "VEHICLE_STATE", "DOOR_OPEN", provider.VehicleStateError, 409),
    ("security", "VEHICLE_STATE", "ASLEEP", provider.VehicleStateError, 409),
    ("security", "UPSTREAM", "NO_RESPONSE", provider.TransientError, 502),
    ("security", "SERVER", "INTERNAL", provider.TransientError, 500),
    ("security", "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", provider.NotCapable, 501),
    ("security", "PERMISSION", None, provider.PermissionDenied, 403),
    ("security", "AUTHENTICATION", None, provider.AuthenticationFailed, 401),
    (
        "security",
        "CONNECTED_SERVICES_ACCOUNT",
        "VIRTUAL_KEY_REQUIRED",
        provider.AccountProblem,
        400,
    ),
    ("security", "BILLING", "VEHICLE_REQUEST_LIMIT", provider.InvalidRequest, 430),
    ("security", "VALIDATION", "PARAMETER", provider.InvalidRequest, 400),
]


@pytest.mark.parametrize(("endpoint", "error_type", "code", "expected", "status"), FAULTS)
def test_injected_faults_become_typed_errors(
    sim, settings, cloud, endpoint, error_type, code, expected, status
):
    car, tokens = connect_vehicle(sim, settings, is_locked=False)
    sim.fault(car["id"], endpoint=endpoint, type=error_type, code=code, retry_after=17)

    with pytest.raises(provider.VehicleCloudError) as caught:
        cloud.lock(access_token=tokens.access_token, vehicle_id=car["id"])
    error = caught.value
    assert type(error) is expected
    assert (error.type, error.code, error.status) == (error_type, code, status)
    assert error.request_id  # the body's requestId, for Smartcar support
    assert error.retry_after == 17  # the Retry-After header, whatever the error
    assert sim.vehicle(car["id"])["is_locked"] is False  # never reached the car


def test_rate_limit_keeps_retry_after_and_resolution(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings)
    sim.fault(car["id"], endpoint="location", type="RATE_LIMIT", code="VEHICLE", retry_after=42)
    with pytest.raises(provider.RateLimited) as caught:
        cloud.location(access_token=tokens.access_token, vehicle_id=car["id"])
    assert caught.value.retry_after == 42
    assert caught.value.resolution == "RETRY_LATER"
    assert "throttling rate limit" in caught.value.message


def test_door_open_keeps_the_message_for_the_person(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings, doors_open=True)
    with pytest.raises(provider.VehicleStateError) as caught:
        cloud.lock(access_token=tokens.access_token, vehicle_id=car["id"])
    assert caught.value.code == "DOOR_OPEN"
    assert caught.value.user_message == (
        "Your vehicle was unable to lock. Please ensure that all doors and the trunk are fully "
        "closed."
    )
    assert str(caught.value).startswith("VEHICLE_STATE:DOOR_OPEN - ")


def test_battery_of_a_petrol_car_is_not_capable(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings, powertrain="ICE")
    with pytest.raises(provider.NotCapable) as caught:
        cloud.battery(access_token=tokens.access_token, vehicle_id=car["id"])
    assert (caught.value.type, caught.value.code) == ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    assert caught.value.user_message == "Your car is unable to perform this request."


def test_missing_scope_is_permission_denied(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings, scope=["read_vehicle_info"])
    with pytest.raises(provider.PermissionDenied) as caught:
        cloud.lock(access_token=tokens.access_token, vehicle_id=car["id"])
    assert caught.value.resolution == "REAUTHENTICATE"


def test_tesla_without_virtual_key_is_an_account_problem(sim, settings, cloud):
    car, tokens = connect_vehicle(sim, settings, make="TESLA", model="Model 3", virtual_key=False)
    with pytest.raises(provider.AccountProblem) as caught:
        cloud.lock(access_token=tokens.access_token, vehicle_id=car["id"])
    assert caught.value.code == "VIRTUAL_KEY_REQUIRED"
    assert caught.value.user_message


def test_slow_car_beyond_the_read_timeout_is_transient(sim, settings):
    car, tokens = connect_vehicle(sim, settings, latency_ms=3000)
    settings.VEHICLE_CLOUD_READ_TIMEOUT = 0.3
    with pytest.raises(provider.TransientError) as caught:
        SmartcarClient.from_settings().lock(access_token=tokens.access_token, vehicle_id=car["id"])
    assert caught.value.type == "TIMEOUT"
    assert caught.value.status is None


def test_unreachable_cloud_is_transient(sim, settings):
    settings.SMARTCAR_API_ORIGIN = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(provider.TransientError) as caught:
        SmartcarClient.from_settings().vehicle_ids(access_token="x")
    assert caught.value.type == "NETWORK"


# --- shapes the simulator never sends (reference §3.4): the parser on hand-made answers ------


def _response(status: int, body: bytes, content_type: str, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update({"Content-Type": content_type, **headers})
    return response


def test_plain_text_gateway_errors_are_transient():
    error = error_from_response(_response(503, b"Service Unavailable", "text/plain"))
    assert type(error) is provider.TransientError
    assert (error.message, error.status) == ("Service Unavailable", 503)


def test_legacy_v1_body_is_parsed():
    body = b'{"error": "rate_limit", "message": "Slow down.", "code": "X", "statusCode": 429, "requestId": "r1"}'
    error = error_from_response(_response(429, body, "application/json", **{"Retry-After": "5"}))
    assert type(error) is provider.RateLimited
    assert (error.type, error.message, error.request_id, error.retry_after) == (
        "rate_limit",
        "Slow down.",
        "r1",
        5,
    )


def test_oauth_server_error_is_transient_not_a_refusal():
    body = b'{"error": "server_error", "error_description": "Try later."}'
    error = error_from_response(_response(500, body, "application/json"))
    assert type(error) is provider.TransientError
    assert error.type == "server_error"


def test_unknown_json_is_invalid_request():
    error = error_from_response(_response(418, b'{"teapot": true}', "application/json"))
    assert type(error) is provider.InvalidRequest
    assert error.type == "SDK_ERROR"
