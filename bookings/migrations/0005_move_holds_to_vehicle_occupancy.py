"""Holds become the car's occupancy (vehicles.Occupancy): every row moves with its period and
keeps its id, the booking, block or service key that owned it now points at it, and an
unanswered request's row carries its respond_by as the expiry. The new table has its exclusion
constraint before the first row arrives, and the old table keeps its own until it is dropped in
the same transaction, so no two overlapping stretches of one car can exist at any moment. Writers
of the old table wait (SHARE lock) until the move is committed."""

import django.db.models.deletion
from django.db import migrations, models


def _tables(apps):
    return {
        "hold": apps.get_model("bookings", "Hold")._meta.db_table,
        "occupancy": apps.get_model("vehicles", "Occupancy")._meta.db_table,
        "booking": apps.get_model("bookings", "Booking")._meta.db_table,
        "block": apps.get_model("bookings", "CarBlock")._meta.db_table,
        "key": apps.get_model("keys", "DigitalKey")._meta.db_table,
    }


def _reset_sequence(cursor, table):
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
        f" COALESCE((SELECT max(id) FROM {table}), 1),"
        f" (SELECT count(*) > 0 FROM {table}))"
    )


def holds_to_occupancies(apps, schema_editor):
    t = _tables(apps)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {t['hold']} IN SHARE MODE")
        cursor.execute(
            f"INSERT INTO {t['occupancy']} (id, car_id, period, kind, expires_at)"
            " SELECT h.id, h.car_id, h.period,"
            " CASE WHEN h.booking_id IS NOT NULL THEN 'trip'"
            " WHEN h.block_id IS NOT NULL THEN 'owner_block' ELSE 'service' END,"
            " CASE WHEN b.status = 'requested' THEN b.respond_by END"
            f" FROM {t['hold']} h LEFT JOIN {t['booking']} b ON b.id = h.booking_id"
        )
        for owner, column in (
            ("booking", "booking_id"),
            ("block", "block_id"),
            ("key", "service_key_id"),
        ):
            cursor.execute(
                f"UPDATE {t[owner]} o SET occupancy_id = h.id FROM {t['hold']} h"
                f" WHERE h.{column} = o.id"
            )
        _reset_sequence(cursor, t["occupancy"])
        # Check the new foreign keys now, so the schema changes after this find nothing pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def occupancies_to_holds(apps, schema_editor):
    t = _tables(apps)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {t['hold']} (id, car_id, period, booking_id, block_id, service_key_id)"
            " SELECT o.id, o.car_id, o.period, b.id, k.id, d.id"
            f" FROM {t['occupancy']} o"
            f" LEFT JOIN {t['booking']} b ON b.occupancy_id = o.id"
            f" LEFT JOIN {t['block']} k ON k.occupancy_id = o.id"
            f" LEFT JOIN {t['key']} d ON d.occupancy_id = o.id"
            " WHERE b.id IS NOT NULL OR k.id IS NOT NULL OR d.id IS NOT NULL"
        )
        _reset_sequence(cursor, t["hold"])
        for owner in ("booking", "block", "key"):
            cursor.execute(f"UPDATE {t[owner]} SET occupancy_id = NULL")
        cursor.execute(f"DELETE FROM {t['occupancy']}")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0004_booking_start_scheduled_at"),
        ("keys", "0008_digitalkey_occupancy"),
        ("vehicles", "0011_occupancy"),
    ]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="occupancy",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="booking",
                to="vehicles.occupancy",
            ),
        ),
        migrations.AddField(
            model_name="carblock",
            name="occupancy",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="block",
                to="vehicles.occupancy",
            ),
        ),
        migrations.RunPython(holds_to_occupancies, occupancies_to_holds),
        migrations.DeleteModel(name="Hold"),
    ]
