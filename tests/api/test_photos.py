"""POST /api/v1/cars/{id}/photos under the photo rules of the pages: judged from the header
(nothing over the pixel budget decoded), JPEG, PNG and WebP only, the cap per car, the request
size; each refusal in the error envelope."""

from __future__ import annotations

import pytest
from PIL import ImageFile

from tests.api.helpers import assert_error, car_url
from tests.factories import make_image_upload, make_image_upload_as, make_png_bomb
from vehicles import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int]]:
    """The sizes of the images Pillow decodes; one over the budget fails the test at once."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def watched_load(image: ImageFile.ImageFile):
        sizes.append(image.size)
        assert image.size[0] * image.size[1] <= 40_000_000, f"decoded {image.size}"
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", watched_load)
    return sizes


def post_photos(client, car, headers, *uploads):
    return client.post(
        f"{car_url(car.public_id)}/photos", {"photos": list(uploads)}, headers=headers
    )


@pytest.mark.parametrize(("width", "height"), [(13000, 13000), (8000, 6000)])
def test_a_photo_over_the_pixel_budget_is_refused_undecoded(
    client, car, owner_auth, decoded, width, height
):
    response = post_photos(client, car, owner_auth, make_png_bomb(width, height))

    body = assert_error(response, 400, "invalid", "photos")
    assert body["fields"]["photos"] == ["This photo has too many pixels: at most 40 megapixels."]
    assert decoded == []
    assert car.photos.count() == 0


@pytest.mark.parametrize(("image_format", "name"), [("GIF", "car.jpg"), ("BMP", "car.png")])
def test_only_jpeg_png_and_webp_are_taken(client, car, owner_auth, image_format, name):
    response = post_photos(client, car, owner_auth, make_image_upload_as(image_format, name))

    body = assert_error(response, 400, "invalid", "photos")
    assert body["fields"]["photos"] == ["Upload a valid image: a JPEG, PNG or WebP photo."]


def test_png_and_webp_are_taken(client, car, owner_auth):
    response = post_photos(
        client,
        car,
        owner_auth,
        make_image_upload_as("PNG", "front.png"),
        make_image_upload_as("WEBP", "back.webp"),
    )

    assert response.status_code == 201, response.content
    assert car.photos.count() == 2


def test_the_cap_per_car_holds(client, car, owner_auth, settings):
    settings.CARSHARE_MAX_PHOTOS_PER_CAR = 3
    services.car_photos_add(car=car, uploads=[make_image_upload(size=(8, 8))] * 2)

    response = post_photos(client, car, owner_auth, make_image_upload(), make_image_upload())

    assert_error(response, 400, "invalid", "photos")
    assert post_photos(client, car, owner_auth, make_image_upload()).status_code == 201
    assert_error(post_photos(client, car, owner_auth, make_image_upload()), 400, "invalid")
    assert car.photos.count() == 3


def test_a_request_over_the_size_limit_is_413_unread(client, car, owner_auth, settings):
    upload = make_image_upload()
    settings.CARSHARE_MAX_REQUEST_BYTES = upload.size  # the multipart framing tips it over

    response = post_photos(client, car, owner_auth, upload)

    body = assert_error(response, 413, "too_large")
    assert body["message"].startswith("The request body is too large: at most ")
    assert car.photos.count() == 0
