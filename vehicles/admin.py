from django.contrib import admin

from vehicles.models import Car, CarPhoto


class CarPhotoInline(admin.TabularInline):
    model = CarPhoto
    extra = 0
    fields = ["image", "thumbnail", "position"]
    readonly_fields = ["thumbnail"]


@admin.register(Car)
class CarAdmin(admin.ModelAdmin):
    list_display = [
        "licence_plate",
        "make",
        "model",
        "year",
        "city",
        "owner",
        "hourly_price",
        "daily_price",
        "instant_book",
        "is_listed",
    ]
    list_filter = ["is_listed", "instant_book", "make", "fuel_type", "transmission", "city"]
    search_fields = ["licence_plate", "vin", "model", "city", "address", "owner__email"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    inlines = [CarPhotoInline]
