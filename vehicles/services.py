"""Writes to car listings: create, update, unlist, relist, and photos.

A car is listed when created and can be unlisted (hidden from search, not bookable) and listed
again; rows are never deleted, because bookings and keys will point at them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from PIL import Image, ImageOps

from accounts.models import User
from carshare import db
from carshare.errors import DomainError
from vehicles import crypto
from vehicles.models import PLATE_UNIQUE_WHEN_LISTED, Car, CarPhoto
from vehicles.photos import PHOTO_FORMATS, PhotoRefused, photo_check

PHOTO_MAX_SIDE = 1600
THUMB_SIZE = (480, 320)


class CarError(DomainError):
    """Raised when the rules refuse an action; str(error) can be shown to the user as is. What
    a form shows on the page (a plate another listed car took meanwhile, ...) is a 409
    `conflict` in the API."""

    default_status = 409

    def __init__(self, message: str | Promise, *, code: str = "conflict") -> None:
        super().__init__(code, message)


def _jpeg(image: Image.Image) -> ContentFile:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85, optimize=True)
    return ContentFile(buffer.getvalue())


def _photo_files(upload: UploadedFile) -> tuple[ContentFile, ContentFile]:
    """Re-encode the upload (drops EXIF, GPS included) and make a cropped thumbnail."""
    try:
        # The header again, whoever called: nothing over the pixel budget is ever decoded.
        photo_check(upload)
    except PhotoRefused as refusal:
        raise CarError(str(refusal)) from refusal
    with Image.open(upload, formats=PHOTO_FORMATS) as original:
        # A JPEG can be decoded at 1/2, 1/4 or 1/8 scale straight away: a big photo then
        # never takes its full size in memory (other formats ignore this).
        original.draft("RGB", (PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
        image = ImageOps.exif_transpose(original)
        image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
        thumb = ImageOps.fit(image, THUMB_SIZE)
        return _jpeg(image), _jpeg(thumb)


@transaction.atomic
def car_photos_add(*, car: Car, uploads: Iterable[UploadedFile]) -> list[CarPhoto]:
    """Store photos after the car's existing ones, at most CARSHARE_MAX_PHOTOS_PER_CAR."""
    # Decoding takes CPU time, not the car: done before the lock, so it is held only to count
    # and save.
    files = [_photo_files(upload) for upload in uploads]
    # The car's row lock makes concurrent uploads count one after the other: each sees the
    # photos the other saved, so together they cannot pass the cap the form checked alone.
    Car.objects.select_for_update().filter(pk=car.pk).get()
    start = car.photos.count()
    cap = settings.CARSHARE_MAX_PHOTOS_PER_CAR
    if start + len(files) > cap:
        raise CarError(_("A car can have at most %(n)s photos.") % {"n": cap})
    photos = []
    for offset, (full, thumb) in enumerate(files):
        photo = CarPhoto(car=car, position=start + offset)
        photo.image.save("photo.jpg", full, save=False)
        photo.thumbnail.save("thumb.jpg", thumb, save=False)
        photo.save()
        photos.append(photo)
    return photos


def car_photo_delete(*, car: Car, photo_id: int) -> None:
    if car.photos.count() <= 1:
        raise CarError(_("A listed car needs at least one photo."))
    photo = car.photos.filter(pk=photo_id).first()
    if photo is not None:
        photo.image.delete(save=False)
        photo.thumbnail.delete(save=False)
        photo.delete()


def _save(car: Car) -> Car:
    try:
        # The savepoint keeps the outer transaction usable when the constraint fires.
        with transaction.atomic():
            car.save()
    except IntegrityError as error:
        # Two owners racing for the same plate: the partial unique index decides.
        if db.violates(error, PLATE_UNIQUE_WHEN_LISTED):
            raise CarError(_("A listed car already has this licence plate.")) from error
        raise
    return car


@transaction.atomic
def car_create(*, owner: User, data: dict[str, Any], photos: Iterable[UploadedFile] = ()) -> Car:
    """List a new car for `owner` from cleaned CarForm data."""
    car = Car(owner=owner, **{k: v for k, v in data.items() if k not in ("photos", "fallback")})
    _set_fallback(car, data)
    _save(car)
    car_photos_add(car=car, uploads=photos)
    return car


@transaction.atomic
def car_update(*, car: Car, data: dict[str, Any], photos: Iterable[UploadedFile] = ()) -> Car:
    """Apply cleaned CarForm data (all or some fields) to the car."""
    for field, value in data.items():
        if field not in ("photos", "fallback"):
            setattr(car, field, value)
    _set_fallback(car, data)
    _save(car)
    car_photos_add(car=car, uploads=photos)
    return car


def _set_fallback(car: Car, data: dict[str, Any]) -> None:
    """The owner's fallback, encrypted (vehicles.crypto); left as it is when not given."""
    if "fallback" in data:
        text = (data["fallback"] or "").strip()
        car.fallback_encrypted = crypto.encrypt_token(text) if text else ""


@transaction.atomic
def car_unlist(*, car: Car) -> Car:
    """Hide the car from search and new bookings; its history stays."""
    car.is_listed = False
    car.save(update_fields=["is_listed", "updated_at"])
    return car


@transaction.atomic
def car_relist(*, car: Car) -> Car:
    car.is_listed = True
    return _save(car)
