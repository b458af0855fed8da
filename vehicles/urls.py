from django.urls import path

from vehicles import views

app_name = "vehicles"
urlpatterns = [
    path("cars/", views.car_browse, name="car_browse"),
]
