"""What a car photo upload may be, decided from the file's header before any pixel is decoded.

A PNG of a few hundred kilobytes can declare 13000 x 13000 pixels and take a web process to
gigabytes once decoded, so the form (pages and API) and the photo service both look at the
header first: Pillow's Image.open reads only that, and is told which decoders it may use.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from PIL import Image, UnidentifiedImageError

from carshare.errors import DomainError

# The formats the help text promises. Only their decoders are tried, so a GIF, TIFF or PSD
# named car.jpg is refused rather than handed to a decoder we never meant to expose. (Pillow's
# JPEG decoder also reads the multi-picture JPEGs many phones write: they stay accepted.)
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP")


class PhotoRefused(DomainError, ValueError):
    """The upload is not a photo we take; str(error) can be shown to the user as is."""

    def __init__(self, message: str | Promise, *, code: str = "invalid_photo") -> None:
        super().__init__(code, message)


def photo_check(upload: UploadedFile) -> tuple[int, int]:
    """The photo's (width, height), read from its header; PhotoRefused if it is not a JPEG,
    PNG or WebP within the pixel budget (CARSHARE_PHOTO_MAX_PIXELS)."""
    budget = settings.CARSHARE_PHOTO_MAX_PIXELS
    too_large = PhotoRefused(
        _("This photo has too many pixels: at most %(mp)s megapixels.")
        % {"mp": round(budget / 1_000_000)}
    )
    upload.seek(0)
    try:
        with Image.open(upload, formats=PHOTO_FORMATS) as image:
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as bomb:
        # Pillow's own limit (set to the budget in VehiclesConfig.ready): far over budget it
        # refuses, over it it warns, which tests and strict deployments turn into an error.
        raise too_large from bomb
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as unreadable:
        raise PhotoRefused(_("Upload a valid image: a JPEG, PNG or WebP photo.")) from unreadable
    finally:
        upload.seek(0)
    if width * height > budget:
        raise too_large
    return width, height
