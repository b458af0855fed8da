"""The workers' event loop hands every due ETA task to the pool in one turn (carshare/celery.py):
a thousand trips starting in the same second stage a thousand unlocks due then."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from kombu.asynchronous.hub import Hub

from carshare import celery as carshare_celery


def due_timers(hub: Hub, count: int) -> list[int]:
    fired: list[int] = []
    for number in range(count):
        hub.timer.call_after(0, fired.append, (number,))
    return fired


def test_kombu_alone_fires_ten_due_timers_per_turn_of_the_loop():
    # Why the worker needs the change below: if kombu lifts this limit, the change can go.
    hub = Hub()
    fired = due_timers(hub, 50)
    hub.fire_timers()
    assert len(fired) == 10
    hub.close()


def test_a_ready_worker_fires_every_due_timer_in_one_turn():
    hub = Hub()
    fired = due_timers(hub, 1000)
    carshare_celery.fire_due_timers_together(sender=SimpleNamespace(hub=hub))
    hub.fire_timers()
    assert sorted(fired) == list(range(1000))
    hub.close()


def test_a_worker_without_an_event_loop_is_left_alone():
    carshare_celery.fire_due_timers_together(sender=SimpleNamespace(hub=None))  # solo pool
    carshare_celery.fire_due_timers_together(sender=None)


def test_the_handler_is_connected_to_worker_ready():
    from celery.signals import worker_ready

    receivers = [ref() for _, ref in worker_ready.receivers]
    assert carshare_celery.fire_due_timers_together in receivers
    assert carshare_celery.start_every_pool_thread in receivers


def test_a_ready_thread_pool_worker_has_all_its_threads_started():
    executor = ThreadPoolExecutor(max_workers=40)
    before = threading.active_count()
    carshare_celery.start_every_pool_thread(
        sender=SimpleNamespace(pool=SimpleNamespace(executor=executor, limit=40))
    )
    assert threading.active_count() - before == 40
    # Idle and reused: another task starts no new thread.
    executor.submit(lambda: None).result(timeout=5)
    assert threading.active_count() - before == 40
    executor.shutdown()


def test_a_prefork_worker_starts_no_threads():
    before = threading.active_count()
    carshare_celery.start_every_pool_thread(sender=SimpleNamespace(pool=SimpleNamespace(limit=2)))
    assert threading.active_count() == before


def test_every_email_task_retries_only_transient_mail_failures():
    from carshare import once
    from carshare.celery import app

    app.loader.import_default_modules()
    email_tasks = [
        "bookings.tasks.send_booking_emails",
        "bookings.tasks.send_trip_reminder",
        "keys.tasks.send_key_email",
        "keys.tasks.send_share_invitation",
        "keys.tasks.send_end_lock_alert",
        "vehicles.tasks_connections.send_connection_unhealthy_email",
    ]
    for name in email_tasks:
        task = app.tasks[name]
        assert tuple(task.autoretry_for) == once.MAIL_TRANSIENT, name
        assert (task.max_retries, task.acks_late, task.retry_backoff) == (6, True, True), name
