from django.urls import path

from keys import views

app_name = "keys"
urlpatterns = [
    path("", views.key_list, name="key_list"),
    # A key, the actions of its holder, and the car's live status while it is open.
    path("<uuid:public_id>/", views.key_detail, name="key_detail"),
    path("<uuid:public_id>/unlock/", views.key_unlock, name="key_unlock"),
    path("<uuid:public_id>/lock/", views.key_lock, name="key_lock"),
    path("<uuid:public_id>/car-status/", views.key_car_status, name="key_car_status"),
    path("<uuid:public_id>/share/", views.key_share, name="key_share"),
    path("<uuid:public_id>/revoke/", views.key_revoke, name="key_revoke"),
    # The trip's start unlock: its attempts, "I'm at the car and it won't open", and the
    # owner's one-tap unlock for a renter at the car (a trip key's id, the owner only).
    path("<uuid:public_id>/start/", views.key_start_status, name="key_start_status"),
    path("<uuid:public_id>/at-car/", views.key_at_car, name="key_at_car"),
    path("<uuid:public_id>/fallback/", views.key_fallback, name="key_fallback"),
    path("<uuid:public_id>/rescue/", views.start_rescue, name="start_rescue"),
    # A lock or unlock asked for from these pages, followed until it is done.
    path("commands/<uuid:public_id>/", views.key_command_status, name="key_command_status"),
    # The owner's "Keys and access" panel of a car.
    path("cars/<uuid:public_id>/", views.car_keys, name="car_keys"),
    path("cars/<uuid:public_id>/service-keys/", views.service_key_issue, name="service_key_issue"),
    path("cars/<uuid:public_id>/unlock/", views.car_unlock, name="car_unlock"),
    path("cars/<uuid:public_id>/audit/", views.car_audit, name="car_audit"),
]
