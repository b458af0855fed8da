"""The demo data of `make run`: a fixed contract that tests and demos sign in with.

Owners owner1..4@demo.carshare.test, renters renter1..5@demo.carshare.test and the admin
admin@demo.carshare.test, every password DEMO_PASSWORD, every email verified; 14 cars across
Amsterdam, Rotterdam and Utrecht, each with a generated photo (no downloads at run time).
"""

from __future__ import annotations

import datetime
import io
import unicodedata
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from accounts.models import User
from vehicles import services
from vehicles.makes import MAKE_NAMES
from vehicles.models import Car

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
    (0, "TOYOTA", "Yaris Hybrid", 2020, "TY2020", "", 5, "hybrid", "automatic", "Amsterdam", "Javastraat 12", (-0.006, 0.040), "6.00", "39.00", False, (230, 230, 230)),
    (1, "BMW", "320i Touring", 2019, "BM320T", "WBA8E11000K000004", 5, "petrol", "automatic", "Amsterdam", "Van Baerlestraat 31", (-0.012, -0.016), "11.00", "72.00", False, (20, 20, 30)),
    (1, "RENAULT", "Zoe", 2021, "RZ0E21", "VF1AG000065000005", 5, "electric", "automatic", "Amsterdam", "Overhoeksplein 1", (0.014, 0.006), "6.50", "42.00", True, (90, 170, 210)),
    (1, "FORD", "Transit Custom", 2020, "FT9C02", "WF0YXXTTGYL000006", 3, "diesel", "manual", "Amsterdam", "Wibautstraat 150", (-0.015, 0.020), "12.50", "80.00", True, (245, 245, 245)),
    (2, "NISSAN", "Leaf", 2019, "NL2019", "SJNFAAZE0U0000007", 5, "electric", "automatic", "Rotterdam", "Coolsingel 40", (0.002, 0.001), "6.00", "38.00", True, (120, 120, 130)),
    (2, "KIA", "Niro", 2022, "KN2022", "KNACC81GFN5000008", 5, "hybrid", "automatic", "Rotterdam", "Witte de Withstraat 50", (-0.006, -0.005), "8.50", "55.00", False, (60, 110, 60)),
    (2, "VOLVO", "XC40 Recharge", 2023, "VX4023", "YV1XZ000000000009", 5, "electric", "automatic", "Rotterdam", "Wilhelminakade 137", (-0.017, 0.010), "15.00", "99.00", True, (170, 180, 190)),
    (2, "PEUGEOT", "208", 2018, "PG2082", "", 5, "petrol", "manual", "Rotterdam", "Meent 100", (0.003, 0.006), "5.50", "35.00", True, (250, 190, 0)),
    (3, "HYUNDAI", "Ioniq 5", 2023, "HI5023", "KMHKN81AFPU000011", 5, "electric", "automatic", "Utrecht", "Oudegracht 158", (0.000, 0.000), "13.00", "85.00", True, (150, 150, 120)),
    (3, "SKODA", "Octavia Combi", 2020, "SO2020", "TMBJJ7NE0L0000012", 5, "diesel", "manual", "Utrecht", "Stationsplein 1", (-0.001, -0.011), "8.00", "52.00", False, (30, 60, 40)),
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
    cars = Car.objects.filter(owner__email__endswith=f"@{DEMO_DOMAIN}").count()
    return "\n".join(
        [
            f"Demo logins (password: {DEMO_PASSWORD}):",
            f"  admin   {ADMIN_EMAIL}",
            f"  owners  {', '.join(OWNER_EMAILS)}",
            f"  renters {', '.join(RENTER_EMAILS)}",
            f"  {cars} demo cars are listed.",
        ]
    )
