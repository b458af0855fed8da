from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Bookings"

    def ready(self) -> None:
        # Car search filters by free dates, but vehicles sits below bookings and must not
        # import it: hand it the filter instead (STYLE §2).
        from bookings import selectors
        from vehicles import selectors as vehicle_selectors

        vehicle_selectors.register_availability_filter(selectors.cars_free_between)
        # Service keys' windows take the car like owner blocks; keys sits below bookings too.
        from bookings.windows import ServiceWindowHolds
        from keys import grants

        grants.register_window_holds(ServiceWindowHolds())
