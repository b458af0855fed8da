"""A worker that imports keys.tasks (what Celery's autodiscovery does) knows every keys task,
under the names the beat schedule and messages already queued use."""

from __future__ import annotations

from django.conf import settings

from carshare.celery import app
from keys import tasks, tasks_email


def test_every_keys_task_answers_to_its_name():
    by_name = {
        "keys.tasks.run_key_clock": tasks.run_key_clock,
        "keys.tasks.activate_key": tasks.activate_key,
        "keys.tasks.end_service_window": tasks.end_service_window,
        "keys.tasks.send_key_email": tasks_email.send_key_email,
        "keys.tasks.send_share_invitation": tasks_email.send_share_invitation,
        "keys.tasks.send_end_lock_alert": tasks_email.send_end_lock_alert,
    }

    for name, task in by_name.items():
        assert task.name == name
        assert app.tasks[name] == task  # the registered task itself (shared_task hands out a proxy)
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "keys.tasks.run_key_clock" in schedule
