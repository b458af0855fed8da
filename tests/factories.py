"""Factories make valid fresh rows and know no lifecycle; states come from services."""

from __future__ import annotations

import datetime
import io
import struct
import zlib
from decimal import Decimal

import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import User
from vehicles.cloud.provider import CONNECT_SCOPES
from vehicles.models import Car, ConnectionStatus, VehicleConnection


def make_image_upload(
    name: str = "car.jpg", size: tuple[int, int] = (800, 600)
) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 110, 180)).save(buffer, "JPEG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


def make_png_bomb(
    width: int = 13000, height: int = 13000, name: str = "car.png"
) -> SimpleUploadedFile:
    """A valid 1-bit black PNG of `width` x `height`: some kilobytes of file, but decoding it
    would take Pillow a byte a pixel (and RGB three more). Written chunk by chunk, so making
    it never holds the image either."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte "none", then the row's bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    return SimpleUploadedFile(name, png, content_type="image/png")


def make_image_upload_as(
    image_format: str, name: str = "car.jpg", size: tuple[int, int] = (64, 48)
) -> SimpleUploadedFile:
    """An image of `image_format` (GIF, BMP, PNG, WEBP, ...) under any name, sent as a JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 110, 180)).save(buffer, image_format)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    name = factory.Faker("name")
    password = factory.django.Password("correct-horse-battery")

    @factory.post_generation
    def verified(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        """A verified primary address, as allauth requires before sign-in."""
        if not create or extracted is False:
            return
        from allauth.account.models import EmailAddress

        EmailAddress.objects.create(user=self, email=self.email, primary=True, verified=True)


class RenterFactory(UserFactory):
    licence_number = factory.Sequence(lambda n: f"NL{n:08d}")
    licence_country = "NL"
    licence_expires_on = factory.LazyFunction(
        lambda: datetime.date.today() + datetime.timedelta(days=3 * 365)  # noqa: DTZ011
    )


class CarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Car
        skip_postgeneration_save = True  # the connection row points at the car; nothing to save

    owner = factory.SubFactory(UserFactory)
    make = "VOLKSWAGEN"
    model = "Golf"
    year = 2021
    licence_plate = factory.Sequence(lambda n: f"TS{n:04d}X")
    seats = 5
    fuel_type = "petrol"
    transmission = "manual"
    description = "A tidy car."
    address = "Damrak 1"
    city = "Amsterdam"
    latitude = Decimal("52.374000")
    longitude = Decimal("4.898000")
    hourly_price = Decimal("8.00")
    daily_price = Decimal("50.00")
    min_notice_hours = 0
    min_duration_hours = 1
    max_duration_days = 14
    instant_book = True

    class Params:
        # connected=True: the car has a healthy connection row, so it is public (bookable as
        # listed) without the simulator. For listings, search and booking rules only: nothing
        # can call this car (connected_car connects a real simulator vehicle instead).
        connected = factory.Trait(
            connection=factory.RelatedFactory(
                "tests.factories.VehicleConnectionFactory", factory_related_name="car"
            )
        )


class VehicleConnectionFactory(factory.django.DjangoModelFactory):
    """A healthy connection as Connect leaves it (lock and unlock granted), without tokens."""

    class Meta:
        model = VehicleConnection

    car = factory.SubFactory(CarFactory)
    vehicle_id = factory.Sequence(lambda n: f"row-vehicle-{n:06d}")
    mode = "simulator"
    status = ConnectionStatus.HEALTHY
    scopes = factory.LazyFunction(
        lambda: [scope.removeprefix("required:") for scope in CONNECT_SCOPES]
    )
