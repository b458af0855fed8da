"""A command carries its own deadline and says whether it is staged for a later moment, so the
worker's last check before calling the car reads the command's row only."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("vehicles", "0009_command_joined_by"),
    ]

    operations = [
        migrations.AddField(
            model_name="vehiclecommand",
            name="late_message",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="vehiclecommand",
            name="not_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="vehiclecommand",
            name="staged",
            field=models.BooleanField(default=False),
        ),
        # Commands already waiting: what used to be inferred from their columns, written down
        # (the keys migration after this one adds their keys' window ends).
        migrations.RunSQL(
            """
            UPDATE vehicles_vehiclecommand SET staged = true
             WHERE status = 'queued' AND attempts = 0 AND actor_id IS NULL
               AND next_attempt_at > now();
            UPDATE vehicles_vehiclecommand SET not_after = send_by
             WHERE status IN ('queued', 'sent') AND send_by IS NOT NULL;
            """,
            migrations.RunSQL.noop,
        ),
    ]
