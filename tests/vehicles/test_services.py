"""Writes to cars: photos re-encoded with thumbnails, the last photo kept, plates on relist."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.factories import CarFactory, make_image_upload
from tests.vehicles.helpers import car_form_data, stored_image
from vehicles import services
from vehicles.forms import CarForm


def upload_with_exif() -> SimpleUploadedFile:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N"}  # GPS info: where the photo was taken
    buffer = io.BytesIO()
    Image.new("RGB", (2400, 1800), (200, 30, 30)).save(buffer, "JPEG", exif=exif)
    return SimpleUploadedFile("gps.jpg", buffer.getvalue(), content_type="image/jpeg")


def png_upload() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGBA", (600, 600), (0, 0, 0, 0)).save(buffer, "PNG")
    return SimpleUploadedFile("car.png", buffer.getvalue(), content_type="image/png")


def test_create_stores_reencoded_photos_with_thumbnails(owner):
    form = CarForm(car_form_data(), {"photos": upload_with_exif()}, require_photos=True)
    assert form.is_valid(), form.errors
    car = services.car_create(
        owner=owner, data=form.cleaned_data, photos=form.cleaned_data["photos"]
    )

    photo = car.photos.get()
    with stored_image(photo.image) as image:
        assert image.format == "JPEG"
        assert max(image.size) == services.PHOTO_MAX_SIDE  # 2400 wide was scaled down
        assert not image.getexif()  # the GPS position is gone
    with stored_image(photo.thumbnail) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == services.THUMB_SIZE
    assert car.licence_plate == "AB12CD"
    assert car.is_listed


def test_png_upload_becomes_jpeg(car):
    (photo,) = services.car_photos_add(car=car, uploads=[png_upload()])
    with stored_image(photo.image) as image:
        assert image.format == "JPEG"
    assert photo.image.name.endswith(".jpg")


def test_added_photos_go_after_existing_ones(car):
    services.car_photos_add(car=car, uploads=[make_image_upload()])
    services.car_update(car=car, data={"model": "Polo"}, photos=[make_image_upload()])
    assert list(car.photos.values_list("position", flat=True)) == [0, 1]
    car.refresh_from_db()
    assert car.model == "Polo"


def test_last_photo_cannot_be_deleted(car):
    (photo,) = services.car_photos_add(car=car, uploads=[make_image_upload()])
    with pytest.raises(services.CarError):
        services.car_photo_delete(car=car, photo_id=photo.pk)
    assert car.photos.count() == 1


def test_deleting_a_photo_removes_its_files(car):
    first, second = services.car_photos_add(
        car=car, uploads=[make_image_upload(), make_image_upload()]
    )
    storage = first.image.storage
    services.car_photo_delete(car=car, photo_id=first.pk)
    assert list(car.photos.all()) == [second]
    assert not storage.exists(first.image.name)
    assert not storage.exists(first.thumbnail.name)


def test_photo_of_another_car_is_left_alone(car):
    services.car_photos_add(car=car, uploads=[make_image_upload(), make_image_upload()])
    other = CarFactory()
    (foreign,) = services.car_photos_add(car=other, uploads=[make_image_upload()])
    services.car_photo_delete(car=car, photo_id=foreign.pk)
    assert other.photos.filter(pk=foreign.pk).exists()


def test_unlist_and_relist(car):
    services.car_unlist(car=car)
    car.refresh_from_db()
    assert not car.is_listed
    services.car_relist(car=car)
    car.refresh_from_db()
    assert car.is_listed


def test_relist_refused_when_the_plate_is_listed_again(owner):
    old = services.car_unlist(car=CarFactory(owner=owner, licence_plate="AB12CD"))
    CarFactory(licence_plate="AB12CD")
    with pytest.raises(services.CarError, match="already has this licence plate"):
        services.car_relist(car=old)
    old.refresh_from_db()
    assert not old.is_listed
