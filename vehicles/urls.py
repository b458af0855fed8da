from django.urls import path

from vehicles import views

app_name = "vehicles"
urlpatterns = [
    path("cars/", views.car_browse, name="car_browse"),
    path("cars/new/", views.car_create, name="car_create"),
    path("cars/<uuid:public_id>/", views.car_detail, name="car_detail"),
    path("cars/<uuid:public_id>/edit/", views.car_edit, name="car_edit"),
    path("cars/<uuid:public_id>/unlist/", views.car_unlist, name="car_unlist"),
    path("cars/<uuid:public_id>/relist/", views.car_relist, name="car_relist"),
    path("cars/<uuid:public_id>/photos/delete/", views.car_photo_delete, name="car_photo_delete"),
    path("cars/<uuid:public_id>/connect/", views.car_connect, name="car_connect"),
    path("cars/<uuid:public_id>/disconnect/", views.car_disconnect, name="car_disconnect"),
    path("cars/<uuid:public_id>/status/", views.car_status, name="car_status"),
    # Smartcar Connect redirects here: settings.SMARTCAR_REDIRECT_URI defaults to this path.
    path("connect/callback/", views.connect_callback, name="connect_callback"),
    path("my/cars/", views.my_cars, name="my_cars"),
]
