"""Commands already waiting under a key get their key's window end as their deadline: the
worker no longer asks keys about them right before calling the car."""

from django.db import migrations

SQL = """
UPDATE vehicles_vehiclecommand AS c
   SET not_after = LEAST(COALESCE(c.not_after, w.end_at), w.end_at)
  FROM (
        SELECT c2.id,
               CASE WHEN k.status IN ('revoked', 'expired') THEN now()
                    WHEN c2.action = 'unlock' THEN k.valid_until
                    ELSE k.lock_until END AS end_at
          FROM vehicles_vehiclecommand AS c2
          JOIN keys_digitalkey AS k ON k.id = c2.key_id
         WHERE c2.status = 'queued' AND c2.reason NOT IN ('trip_end', 'service_end')
       ) AS w
 WHERE w.id = c.id;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0006_digitalkey_booking_public_id"),
        ("vehicles", "0010_command_not_after_staged"),
    ]

    operations = [migrations.RunSQL(SQL, migrations.RunSQL.noop)]
