"""The liveness probe: answers without touching the database."""

from __future__ import annotations


def test_healthz_answers_ok_without_the_database(client, django_assert_num_queries, db):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert "no-cache" in response["Cache-Control"]
    assert client.post("/healthz").status_code == 405
