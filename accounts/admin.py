from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "phone", "licence_until", "staff", "active", "joined"]
    list_filter = ["is_staff", "is_superuser", "is_active", "licence_country"]
    search_fields = ["email", "name", "phone", "licence_number"]
    readonly_fields = ["public_id", "last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("email", "password", "public_id")}),
        (_("Profile"), {"fields": ("name", "phone")}),
        (
            _("Driving licence"),
            {"fields": ("licence_number", "licence_country", "licence_expires_on")},
        ),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    @admin.display(description=_("licence until"), ordering="licence_expires_on")
    def licence_until(self, user: User) -> object:
        return user.licence_expires_on

    @admin.display(description=_("staff"), boolean=True, ordering="is_staff")
    def staff(self, user: User) -> bool:
        return user.is_staff

    @admin.display(description=_("active"), boolean=True, ordering="is_active")
    def active(self, user: User) -> bool:
        return user.is_active

    @admin.display(description=_("joined"), ordering="date_joined")
    def joined(self, user: User) -> object:
        return user.date_joined.date()
