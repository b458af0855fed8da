"""The demo data of `make run`: a fixed contract that tests and demos sign in with.

Owners owner1..4@demo.carshare.test, renters renter1..5@demo.carshare.test and the admin
admin@demo.carshare.test, every password DEMO_PASSWORD, every email verified; 14 cars across
Amsterdam, Rotterdam and Utrecht, each with a generated photo (no downloads at run time).

With the local simulator as the vehicle cloud (SMARTCAR_MODE=simulator, the default), every demo
car is also connected: demo_connect_cars() creates its twin in the simulator through the
simulator's control API (/_sim/, development tooling only: the app itself never calls it), gives
consent headlessly as the owner would in Connect, and connects it through the same code path as
the Connect callback. It runs on every `make run` and only connects what is not connected.
"""

from __future__ import annotations

import datetime
import io
import unicodedata
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from accounts.models import User
from vehicles import connect, services
from vehicles.cloud import connections
from vehicles.cloud.provider import CONNECT_SCOPES
from vehicles.makes import MAKE_NAMES
from vehicles.models import Car, ConnectionStatus, FuelType

DEMO_PASSWORD = "carshare-demo"  # noqa: S105 - published demo credentials, demo data only
DEMO_DOMAIN = "demo.carshare.test"
ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
OWNER_EMAILS = [f"owner{n}@{DEMO_DOMAIN}" for n in range(1, 5)]
RENTER_EMAILS = [f"renter{n}@{DEMO_DOMAIN}" for n in range(1, 6)]

CITIES = {
    "Amsterdam": (Decimal("52.370216"), Decimal("4.895168")),
    "Rotterdam": (Decimal("51.924420"), Decimal("4.477733")),
    "Utrecht": (Decimal("52.090737"), Decimal("5.121420")),
}

# (owner index, make, model, year, plate, vin, seats, fuel, transmission, city, street,
#  offset, hourly, daily, instant, colour)
CARS: list[tuple] = [
    (0, "VOLKSWAGEN", "Golf", 2021, "GV123K", "WVWZZZCDZMW000001", 5, "petrol", "manual", "Amsterdam", "Damrak 70", (0.004, 0.002), "7.50", "49.00", True, (32, 84, 150)),
    (0, "TESLA", "Model 3", 2022, "TS3001", "5YJ3E1EA7NF000002", 5, "electric", "automatic", "Amsterdam", "Prinsengracht 263", (0.005, -0.012), "14.00", "95.00", True, (200, 30, 40)),
    (0, "HONDA", "Jazz Hybrid", 2020, "HJ2020", "", 5, "hybrid", "automatic", "Amsterdam", "Javastraat 12", (-0.006, 0.040), "6.00", "39.00", False, (230, 230, 230)),
    (1, "BMW", "320i Touring", 2019, "BM320T", "WBA8E11000K000004", 5, "petrol", "automatic", "Amsterdam", "Van Baerlestraat 31", (-0.012, -0.016), "11.00", "72.00", False, (20, 20, 30)),
    (1, "RENAULT", "Zoe", 2021, "RZ0E21", "VF1AG000065000005", 5, "electric", "automatic", "Amsterdam", "Overhoeksplein 1", (0.014, 0.006), "6.50", "42.00", True, (90, 170, 210)),
    (1, "FORD", "Transit Custom", 2020, "FT9C02", "WF0YXXTTGYL000006", 3, "diesel", "manual", "Amsterdam", "Wibautstraat 150", (-0.015, 0.020), "12.50", "80.00", True, (245, 245, 245)),
    (2, "NISSAN", "Leaf", 2019, "NL2019", "SJNFAAZE0U0000007", 5, "electric", "automatic", "Rotterdam", "Coolsingel 40", (0.002, 0.001), "6.00", "38.00", True, (120, 120, 130)),
    (2, "KIA", "Niro", 2022, "KN2022", "KNACC81GFN5000008", 5, "hybrid", "automatic", "Rotterdam", "Witte de Withstraat 50", (-0.006, -0.005), "8.50", "55.00", False, (60, 110, 60)),
    (2, "VOLVO", "XC40 Recharge", 2023, "VX4023", "YV1XZ000000000009", 5, "electric", "automatic", "Rotterdam", "Wilhelminakade 137", (-0.017, 0.010), "15.00", "99.00", True, (170, 180, 190)),
    (2, "PEUGEOT", "208", 2018, "PG2082", "", 5, "petrol", "manual", "Rotterdam", "Meent 100", (0.003, 0.006), "5.50", "35.00", True, (250, 190, 0)),
    (3, "HYUNDAI", "Ioniq 5", 2023, "HI5023", "KMHKN81AFPU000011", 5, "electric", "automatic", "Utrecht", "Oudegracht 158", (0.000, 0.000), "13.00", "85.00", True, (150, 150, 120)),
    (3, "VOLKSWAGEN", "Passat Variant", 2020, "VP2020", "WVWZZZ3CZLE000012", 5, "diesel", "manual", "Utrecht", "Stationsplein 1", (-0.001, -0.011), "8.00", "52.00", False, (30, 60, 40)),
    (3, "MERCEDES_BENZ", "Vito Tourer", 2021, "MV2021", "WDF44770313000013", 8, "diesel", "automatic", "Utrecht", "Biltstraat 100", (0.004, 0.017), "16.00", "110.00", False, (40, 40, 50)),
    (3, "MINI", "Cooper SE", 2022, "MC2022", "WMW11DJ0002T00014", 4, "electric", "automatic", "Utrecht", "Nachtegaalstraat 60", (-0.002, 0.022), "9.00", "60.00", True, (220, 60, 60)),
]  # fmt: skip


def car_photo(make: str, model: str, colour: tuple[int, int, int]) -> SimpleUploadedFile:
    """A simple drawn car on a sky background, so every demo car has a photo offline."""
    image = Image.new("RGB", (960, 640), (214, 232, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 470, 960, 640), fill=(96, 104, 112))
    draw.rounded_rectangle(
        (150, 300, 810, 470), radius=50, fill=colour, outline=(20, 20, 20), width=4
    )
    draw.polygon(
        [(280, 300), (370, 200), (620, 200), (710, 300)], fill=colour, outline=(20, 20, 20)
    )
    draw.polygon([(305, 295), (385, 215), (485, 215), (485, 295)], fill=(180, 210, 230))
    draw.polygon([(505, 295), (505, 215), (605, 215), (680, 295)], fill=(180, 210, 230))
    for x in (290, 670):
        draw.ellipse((x - 62, 408, x + 62, 532), fill=(25, 25, 25))
        draw.ellipse((x - 28, 442, x + 28, 498), fill=(170, 170, 170))
    # Pillow's built-in font has no accented capitals (Škoda): draw the ASCII spelling.
    label = unicodedata.normalize("NFKD", f"{MAKE_NAMES[make]} {model}").encode("ascii", "ignore")
    draw.text((40, 40), label.decode(), fill=(10, 30, 60), font_size=56)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return SimpleUploadedFile(f"{make.lower()}.jpg", buffer.getvalue(), content_type="image/jpeg")


def _user(email: str, name: str, **fields: object) -> User:
    user = User.objects.create_user(email=email, password=DEMO_PASSWORD, name=name, **fields)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def demo_data_exists() -> bool:
    return User.objects.filter(email=ADMIN_EMAIL).exists()


@transaction.atomic
def load_demo_data() -> None:
    """Create the demo users and cars; the caller checks demo_data_exists() first."""
    _user(ADMIN_EMAIL, "Ada Admin", is_staff=True, is_superuser=True)
    owners = [
        _user(email, name, phone=f"+31 6 1000 000{n}")
        for n, (email, name) in enumerate(
            zip(
                OWNER_EMAILS,
                ["Olivia Jansen", "Daan de Vries", "Sanne Bakker", "Lucas Visser"],
                strict=True,
            ),
            start=1,
        )
    ]
    expiry = timezone.localdate() + datetime.timedelta(days=4 * 365)
    for n, (email, name) in enumerate(
        zip(
            RENTER_EMAILS,
            ["Emma Smit", "Noah Meijer", "Julia de Boer", "Sem Mulder", "Tess de Groot"],
            strict=True,
        ),
        start=1,
    ):
        _user(
            email,
            name,
            phone=f"+31 6 2000 000{n}",
            licence_number=f"NL{5550000 + n}",
            licence_country="NL",
            licence_expires_on=expiry,
        )
    for row in CARS:
        (owner_ix, make, model, year, plate, vin, seats, fuel, transmission, city, street,
         (dlat, dlng), hourly, daily, instant, colour) = row  # fmt: skip
        lat, lng = CITIES[city]
        services.car_create(
            owner=owners[owner_ix],
            data={
                "make": make,
                "model": model,
                "year": year,
                "licence_plate": plate,
                "vin": vin,
                "seats": seats,
                "fuel_type": fuel,
                "transmission": transmission,
                "description": f"A well-kept {MAKE_NAMES[make]} {model}, cleaned after every trip.",
                "rules": "No smoking. Return with at least the fuel or charge you found.",
                "address": f"{street}, {city}",
                "city": city,
                "latitude": (lat + Decimal(str(dlat))).quantize(Decimal("0.000001")),
                "longitude": (lng + Decimal(str(dlng))).quantize(Decimal("0.000001")),
                "time_zone": "Europe/Amsterdam",
                "hourly_price": Decimal(hourly),
                "daily_price": Decimal(daily),
                "min_notice_hours": 0 if instant else 2,
                "min_duration_hours": 1 if instant else 2,
                "max_duration_days": 14,
                "instant_book": instant,
            },
            photos=[car_photo(make, model, colour)],
        )


def demo_summary() -> str:
    cars = Car.objects.filter(owner__email__endswith=f"@{DEMO_DOMAIN}")
    connected = cars.filter(connections__status=ConnectionStatus.HEALTHY).distinct().count()
    public = cars.public().count()
    return "\n".join(
        [
            f"Demo logins (password: {DEMO_PASSWORD}):",
            f"  admin   {ADMIN_EMAIL}",
            f"  owners  {', '.join(OWNER_EMAILS)}",
            f"  renters {', '.join(RENTER_EMAILS)}",
            f"  {cars.count()} demo cars are listed, {connected} of them connected, "
            f"{public} public (renters find only those).",
        ]
    )


# --- Connecting the demo cars to the simulator ----------------------------------------------

# A demo car's simulator twin gets an id derived from the car's public id: a car without a VIN
# is found again by it, and a wiped simulator gives the same car the same vehicle id back.
SIM_ID_NAMESPACE = uuid.UUID("5f0c8d4e-7a43-4d8e-9a51-3c2b6e1d0a77")
SIM_TIMEOUT = 10


def _twin_id(car: Car) -> str:
    return str(uuid.uuid5(SIM_ID_NAMESPACE, str(car.public_id)))


class DemoConnectError(Exception):
    """The simulator refused something; the message says what, for the terminal."""


class _Simulator:
    """The few /_sim/ calls the demo needs."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def call(self, method: str, path: str, *, expect: tuple[int, ...], **kwargs: Any) -> Any:
        response = self.http.request(method, self.url + path, timeout=SIM_TIMEOUT, **kwargs)
        if response.status_code not in expect:
            raise DemoConnectError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def healthy(self) -> bool:
        try:
            return self.http.get(self.url + "/_sim/health", timeout=2).ok
        except requests.RequestException:
            return False

    def register_client(self) -> None:
        """Register (or refresh) the app's client, keeping redirect URIs and the management
        token someone else registered: re-registering replaces the whole client."""
        client_id = settings.SMARTCAR_CLIENT_ID
        known = self.call("GET", "/_sim/clients", expect=(200,))["clients"]
        current = next((c for c in known if c["client_id"] == client_id), None)
        uris = list(current["redirect_uris"]) if current else []
        if settings.SMARTCAR_REDIRECT_URI not in uris:
            uris.append(settings.SMARTCAR_REDIRECT_URI)
        body: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": settings.SMARTCAR_CLIENT_SECRET,
            "redirect_uris": uris,
        }
        token = settings.SMARTCAR_WEBHOOK_SECRET or (current or {}).get("management_token")
        if token:
            body["management_token"] = token
        self.call("POST", "/_sim/clients", expect=(200, 201), json=body)

    def vehicle(self, vehicle_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"{self.url}/_sim/vehicles/{vehicle_id}", timeout=SIM_TIMEOUT)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DemoConnectError(f"GET /_sim/vehicles/{vehicle_id}: {response.status_code}")
        return response.json()

    def twin_of(self, car: Car) -> dict[str, Any]:
        """The simulator vehicle standing for `car`, created on first use."""
        email = car.owner.email
        if car.vin:
            found = self.call(
                "GET",
                "/_sim/vehicles",
                expect=(200,),
                params={"owner_email": email, "vin": car.vin},
            )["vehicles"]
            if found:
                return found[0]
        elif (twin := self.vehicle(_twin_id(car))) is not None:
            return twin
        body: dict[str, Any] = {
            "id": _twin_id(car),
            "make": car.make,
            "model": car.model,
            "year": car.year,
            "owner_email": email,
            "latitude": float(car.latitude),
            "longitude": float(car.longitude),
        }
        if car.vin:
            body["vin"] = car.vin
        if car.fuel_type == FuelType.ELECTRIC:
            body["battery_percent"] = 76
        else:  # petrol, diesel, and hybrids without a plug
            body["fuel_percent"] = 64
        return self.call("POST", "/_sim/vehicles", expect=(201,), json=body)

    def consent_code(self, *, owner_email: str, vehicle_id: str) -> str:
        """What the owner's "Allow" in Connect would hand back: an authorization code."""
        answer = self.call(
            "POST",
            "/_sim/connect",
            expect=(200,),
            json={
                "client_id": settings.SMARTCAR_CLIENT_ID,
                "redirect_uri": settings.SMARTCAR_REDIRECT_URI,
                "scope": " ".join(CONNECT_SCOPES),
                "state": "demo",
                "owner_email": owner_email,
                "vehicle_ids": [vehicle_id],
                "decision": "approve",
            },
        )
        query = parse_qs(urlsplit(answer["redirect_url"]).query)
        if "code" not in query:
            raise DemoConnectError(
                connect.connect_error_message({k: v[0] for k, v in query.items()})
            )
        return query["code"][0]


def demo_cars() -> list[Car]:
    return list(
        Car.objects.filter(owner__email__endswith=f"@{DEMO_DOMAIN}")
        .select_related("owner")
        .order_by("pk")
    )


def demo_connect_cars(*, say: Callable[[str], None] = print) -> int:
    """Connect every demo car that has no live connection to its simulator twin; returns how
    many were connected now. Only for the local simulator; talks HTTP, so no transaction."""
    if settings.SMARTCAR_MODE != "simulator":
        say(
            f"SMARTCAR_MODE is {settings.SMARTCAR_MODE!r}: the demo cars are not connected "
            "(connect them on their pages through Smartcar Connect)."
        )
        return 0
    # In simulator mode every Smartcar origin is the simulator (carshare/settings.py).
    simulator = _Simulator(settings.SMARTCAR_API_ORIGIN)
    if not simulator.healthy():
        say(
            f"The vehicle-cloud simulator is not answering at {simulator.url}: the demo cars "
            "stay unconnected (start it with `make simulator`, or use `make run`)."
        )
        return 0
    simulator.register_client()
    connected = 0
    for car in demo_cars():
        live = connections.connection_live_for_car(car_id=car.pk)
        # The simulator's state may have been wiped (`make clean`, a new state file): a
        # connection to a vehicle it no longer knows is reconnected.
        try:
            if live is not None and simulator.vehicle(live.vehicle_id) is not None:
                continue
            twin = simulator.twin_of(car)
            code = simulator.consent_code(owner_email=car.owner.email, vehicle_id=twin["id"])
            connect.connection_complete(car=car, code=code)
        except (DemoConnectError, connections.ConnectError, requests.RequestException) as error:
            say(f"  could not connect {car}: {error}")
            continue
        connected += 1
    return connected
