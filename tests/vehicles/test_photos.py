"""Photo uploads: judged from the file's header, so an image over the pixel budget is refused
without ever being decoded; JPEG, PNG and WebP only, whatever the file calls itself; a cap per
car that two uploads at once cannot pass. Forms, the service and the pages (the API in
tests/api/test_photos.py)."""

from __future__ import annotations

import io
import os
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from PIL import Image, ImageFile

from tests.factories import make_image_upload, make_image_upload_as, make_png_bomb
from tests.vehicles.helpers import car_form_data
from vehicles import services
from vehicles.forms import CarForm
from vehicles.models import Car

TOO_MANY_PIXELS = "This photo has too many pixels: at most 40 megapixels."
NOT_A_PHOTO = "Upload a valid image: a JPEG, PNG or WebP photo."


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int]]:
    """The sizes of the images Pillow decodes in this test; one over the budget fails it at
    once (before it could take the gigabyte)."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def watched_load(image: ImageFile.ImageFile):
        sizes.append(image.size)
        assert image.size[0] * image.size[1] <= 40_000_000, f"decoded {image.size}"
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", watched_load)
    return sizes


def photo_form(photos: list, instance: Car | None = None) -> CarForm:
    return CarForm(
        car_form_data(), MultiValueDict({"photos": photos}), instance=instance, require_photos=True
    )


# --- The form (pages and API) ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_decompression_bomb_is_refused_from_its_header(decoded):
    bomb = make_png_bomb(13000, 13000)
    assert bomb.size < 100_000  # small to send, 169 megapixels to decode

    form = photo_form([bomb])

    assert not form.is_valid()
    assert form.errors["photos"] == [TOO_MANY_PIXELS]
    assert decoded == []


@pytest.mark.django_db
def test_a_photo_over_the_budget_but_under_pillows_own_limit_is_refused(decoded):
    # 48 megapixels: below Pillow's default limit (89), so nothing else would stop it.
    form = photo_form([make_png_bomb(8000, 6000)])

    assert not form.is_valid()
    assert form.errors["photos"] == [TOO_MANY_PIXELS]
    assert decoded == []


@pytest.mark.django_db
def test_the_pixel_budget_is_a_setting(settings):
    settings.CARSHARE_PHOTO_MAX_PIXELS = 2_000_000

    assert photo_form([make_png_bomb(1600, 1200)]).is_valid()
    form = photo_form([make_png_bomb(2000, 1200)])
    assert form.errors["photos"] == ["This photo has too many pixels: at most 2 megapixels."]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("image_format", "name"),
    [("GIF", "car.gif"), ("GIF", "car.jpg"), ("BMP", "car.png"), ("TIFF", "car.webp")],
)
def test_only_jpeg_png_and_webp_are_taken_whatever_the_file_says(image_format, name):
    form = photo_form([make_image_upload_as(image_format, name)])

    assert not form.is_valid()
    assert form.errors["photos"] == [NOT_A_PHOTO]


@pytest.mark.django_db
@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_jpeg_png_and_webp_are_taken(image_format):
    assert photo_form([make_image_upload_as(image_format, "car.jpg")]).is_valid()


@pytest.mark.django_db
def test_the_cap_per_car_is_a_setting(settings, car):
    settings.CARSHARE_MAX_PHOTOS_PER_CAR = 3
    services.car_photos_add(car=car, uploads=[make_image_upload(size=(8, 8))] * 2)

    form = photo_form([make_image_upload(), make_image_upload()], instance=car)

    assert form.errors["photos"] == ["A car can have at most 3 photos."]
    assert "at most 3 per car" in str(form["photos"].help_text)


# --- The service ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_service_refuses_a_bomb_itself(car, decoded):
    with pytest.raises(services.CarError, match="too many pixels"):
        services.car_photos_add(car=car, uploads=[make_png_bomb()])

    assert decoded == []
    assert car.photos.count() == 0


@pytest.mark.django_db
def test_the_service_holds_the_cap(settings, car):
    settings.CARSHARE_MAX_PHOTOS_PER_CAR = 2
    services.car_photos_add(car=car, uploads=[make_image_upload(size=(8, 8))])

    with pytest.raises(services.CarError, match="at most 2 photos"):
        services.car_photos_add(car=car, uploads=[make_image_upload(size=(8, 8))] * 2)

    assert car.photos.count() == 1


@pytest.mark.django_db(transaction=True)  # each upload commits in its own thread
def test_two_uploads_at_once_cannot_pass_the_cap(settings, car):
    settings.CARSHARE_MAX_PHOTOS_PER_CAR = 2
    services.car_photos_add(car=car, uploads=[make_image_upload(size=(8, 8))])
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def upload() -> None:
        try:
            start.wait()
            services.car_photos_add(
                car=Car.objects.get(pk=car.pk), uploads=[make_image_upload(size=(8, 8))]
            )
            outcomes.append("added")
        except services.CarError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["added", "refused"]
    assert car.photos.count() == 2


# --- The pages --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_edit_page_refuses_a_bomb_with_a_form_error(owner_client, car, decoded):
    response = owner_client.post(
        reverse("vehicles:car_edit", args=[car.public_id]),
        {**car_form_data(), "photos": [make_png_bomb()]},
    )

    assert response.status_code == 200
    assert TOO_MANY_PIXELS in response.content.decode()
    assert decoded == []
    assert car.photos.count() == 0


@pytest.mark.django_db
def test_create_page_refuses_a_gif_with_a_form_error(owner_client, owner):
    response = owner_client.post(
        reverse("vehicles:car_create"),
        {**car_form_data(), "photos": [make_image_upload_as("GIF", "car.jpg")]},
    )

    assert response.status_code == 200
    assert NOT_A_PHOTO in response.content.decode()
    assert not Car.objects.filter(owner=owner).exists()


def noisy_png(name: str, side: int) -> SimpleUploadedFile:
    """A PNG of random pixels, which no compression shrinks: about 3 bytes a pixel."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


@pytest.mark.django_db
def test_a_request_over_the_size_limit_is_refused_unread(owner_client, car, settings):
    settings.CARSHARE_MAX_REQUEST_BYTES = 100_000
    photos = [noisy_png("front.png", 150), noisy_png("back.png", 150)]  # ~68 KB each

    response = owner_client.post(
        reverse("vehicles:car_edit", args=[car.public_id]),
        {**car_form_data(model="Changed"), "photos": photos},
    )

    assert response.status_code == 413
    html = response.content.decode()
    assert "Upload too large" in html
    assert "at most 97.7\xa0KB" in html
    car.refresh_from_db()
    assert (car.model, car.photos.count()) == ("Golf", 0)


@pytest.mark.django_db
def test_a_request_under_the_size_limit_goes_through(owner_client, car, settings):
    settings.CARSHARE_MAX_REQUEST_BYTES = 100_000

    response = owner_client.post(
        reverse("vehicles:car_edit", args=[car.public_id]),
        {**car_form_data(), "photos": [noisy_png("front.png", 150)]},
    )

    assert response.status_code == 302
    assert car.photos.count() == 1
