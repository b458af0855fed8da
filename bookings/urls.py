from django.urls import path

from bookings import views

app_name = "bookings"
urlpatterns = [
    # Booking a car: the form on the car page and its live quote.
    path("cars/<uuid:public_id>/book/", views.booking_request, name="booking_request"),
    path("cars/<uuid:public_id>/book/quote/", views.booking_quote, name="booking_quote"),
    # A booking and the actions on it.
    path("bookings/<uuid:public_id>/", views.booking_detail, name="booking_detail"),
    path("bookings/<uuid:public_id>/status/", views.booking_status, name="booking_status"),
    path("bookings/<uuid:public_id>/history/", views.booking_history, name="booking_history"),
    path("bookings/<uuid:public_id>/approve/", views.booking_confirm, name="booking_confirm"),
    path("bookings/<uuid:public_id>/decline/", views.booking_decline, name="booking_decline"),
    path("bookings/<uuid:public_id>/cancel/", views.booking_cancel, name="booking_cancel"),
    path("bookings/<uuid:public_id>/end/", views.booking_end, name="booking_end"),
    # Lists.
    path("trips/", views.my_trips, name="my_trips"),
    path("my/bookings/", views.owner_bookings, name="owner_bookings"),
    # The owner's calendar of a car, its blocks and its private feed.
    path("cars/<uuid:public_id>/calendar/", views.car_calendar, name="car_calendar"),
    path("cars/<uuid:public_id>/blocks/", views.block_create, name="block_create"),
    path("blocks/<uuid:public_id>/delete/", views.block_delete, name="block_delete"),
    path("cars/<uuid:public_id>/calendar/<str:token>.ics", views.car_ical, name="car_ical"),
]
