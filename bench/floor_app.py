"""Diagnostic: our full app stack serving the bare app's static page.

``wsgi:app`` plus one extra route, FLOOR_PATH, that returns the same static
HTML as bench/bare_app.py. Every request still passes through our
extensions and hooks (security headers, rate limiter, session, CSRF,
database session teardown), but the view does no work. Its throughput is
the ceiling for any page we serve: ours/bare cannot beat stack/bare.
Used by the benchmark only; the real app never registers this route.
"""

from __future__ import annotations

from flask import Flask

from bench.bare_app import PAGE

FLOOR_PATH = "/__bench/floor"


def add_floor_route(app: Flask) -> Flask:
    def bench_floor() -> str:
        return PAGE

    app.add_url_rule(FLOOR_PATH, "bench_floor", bench_floor, methods=["GET"])
    return app


def create() -> Flask:
    """gunicorn 'bench.floor_app:create()': the real app from wsgi.py, plus the route."""
    from wsgi import app

    return add_floor_route(app)
