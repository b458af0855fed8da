from django.core.cache import caches
from django.db import connection


def test_database_is_postgresql(db):
    assert connection.vendor == "postgresql"


def test_cache_is_redis(db):
    cache = caches["default"]
    cache.set("smoke", "ok", 5)
    assert cache.get("smoke") == "ok"
    assert type(cache).__name__ == "RedisCache"
