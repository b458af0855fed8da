from django.apps import AppConfig
from django.conf import settings


class VehiclesConfig(AppConfig):
    name = "vehicles"
    verbose_name = "Vehicles"

    def ready(self) -> None:
        from PIL import Image

        # Pillow refuses to open anything over twice this (and warns over it) wherever it is
        # used in the process, not only where photos are checked (vehicles/photos.py).
        Image.MAX_IMAGE_PIXELS = settings.CARSHARE_PHOTO_MAX_PIXELS
