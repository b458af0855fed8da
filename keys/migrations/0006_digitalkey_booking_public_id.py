"""A trip or shared key keeps its booking's public id, so showing it never asks bookings."""

from django.db import migrations, models


def fill_from_bookings(apps, schema_editor):
    # The keys issued before the column existed: their booking's public id, once.
    DigitalKey = apps.get_model("keys", "DigitalKey")
    Booking = apps.get_model("bookings", "Booking")
    public_ids = dict(
        Booking.objects.filter(
            pk__in=DigitalKey.objects.filter(booking_id__isnull=False).values("booking_id")
        ).values_list("pk", "public_id")
    )
    for key in DigitalKey.objects.filter(booking_id__in=public_ids).only("pk", "booking_id"):
        DigitalKey.objects.filter(pk=key.pk).update(booking_public_id=public_ids[key.booking_id])


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0005_auditentry_staged_for"),
        # Only its table is read; the first bookings migration creates it.
        ("bookings", "0001_bookings_holds_blocks"),
    ]

    operations = [
        migrations.AddField(
            model_name="digitalkey",
            name="booking_public_id",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill_from_bookings, migrations.RunPython.noop),
    ]
