"""One lock and one unlock on its way per car: a press while one is queued or sent joins it.

Before the rule, a burst of presses left several pending commands of one action on a car; the
older queued ones are superseded by the newest (as a newer command always superseded them),
each with its event row, so the constraint can be added to a live database."""

from django.db import migrations, models


def supersede_duplicates(apps, schema_editor):
    VehicleCommand = apps.get_model("vehicles", "VehicleCommand")
    VehicleCommandEvent = apps.get_model("vehicles", "VehicleCommandEvent")
    pending = (
        VehicleCommand.objects.filter(status__in=["queued", "sent"])
        .exclude(reason="trip_start")
        .order_by("car_id", "action", "-status", "-pk")  # a sent one first, then the newest
    )
    kept = set()
    for command in pending:
        group = (command.car_id, command.action)
        if group not in kept:
            kept.add(group)
            continue
        if command.status != "queued":
            continue  # cannot happen: one command in flight per car
        VehicleCommandEvent.objects.create(
            command=command,
            old_status="queued",
            new_status="superseded",
            note="replaced by the newer command of the same action",
        )
        command.status = "superseded"
        command.save(update_fields=["status"])


class Migration(migrations.Migration):

    dependencies = [
        ("vehicles", "0007_vehicle_status_plural"),
    ]

    operations = [
        migrations.RunPython(supersede_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="vehiclecommand",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["queued", "sent"]))
                & ~models.Q(("reason", "trip_start")),
                fields=("car", "action"),
                name="command_one_pending_per_car_and_action",
            ),
        ),
    ]
