from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Bookings"

    def ready(self) -> None:
        # Keys know their trip by its pk; pages and the API name it by its public id.
        from bookings import selectors
        from keys import selectors as key_selectors

        key_selectors.register_booking_public_ids(selectors.booking_public_ids)
