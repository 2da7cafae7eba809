"""Security headers, error pages, the health check and the checkout rate limit, over HTTP.

Tests that need another configuration build their own app with the ``make_app``
fixture; the session-scoped ``app`` is never changed.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import func, select

from donations.db import db
from donations.supporters.models import Donation
from tests.harness import free_port


def directives(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            assert words[0] not in parsed, f"{words[0]} given twice"
            parsed[words[0]] = words[1:]
    return parsed


# -- headers ---------------------------------------------------------------------------


def test_support_page_sends_the_security_headers(client, simulator) -> None:
    response = client.get("/support")
    assert response.status_code == 200
    csp = directives(response.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    # Scripts only from ourselves and Stripe.js (here: the simulator's mock of it).
    assert sorted(csp["script-src"]) == sorted(["'self'", simulator.url])
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_the_payment_page_loads_stripe_js_from_an_allowed_origin(client, simulator) -> None:
    """The CSP must not block the scripts the payment page itself includes."""
    started = client.post("/support/checkout", data=_checkout_form(client))
    assert started.status_code == 303
    page = client.get(started.headers["Location"])
    assert page.status_code == 200
    allowed = directives(page.headers["Content-Security-Policy"])["script-src"]
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page.text)
    assert scripts, "the checkout page includes no script"
    for src in scripts:
        if src.startswith("/"):
            assert "'self'" in allowed
        else:
            origins = [origin for origin in allowed if origin != "'self'"]
            assert any(src.startswith(origin + "/") for origin in origins), src
    assert f"{simulator.url}/js.stripe.com/v3/" in scripts
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>\s*\S", page.text), "inline script"


def test_error_pages_carry_the_headers_too(client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- unexpected errors -----------------------------------------------------------------


SECRET_DETAIL = "connection string postgresql://admin:hunter2@db.internal/prod"


def test_unexpected_exception_is_a_plain_500_page(make_app) -> None:
    broken = make_app()

    @broken.get("/boom")
    def boom() -> str:
        raise RuntimeError(SECRET_DETAIL)

    @broken.get("/webhooks/boom")
    def webhook_boom() -> str:
        raise KeyError(SECRET_DETAIL)

    client = broken.test_client()
    page = client.get("/boom")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text
    for leak in ("Traceback", "RuntimeError", "hunter2", SECRET_DETAIL, ".py", "line "):
        assert leak not in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]

    hook = client.get("/webhooks/boom")
    assert hook.status_code == 500
    assert hook.text == "500 Internal Server Error\n"


def test_a_view_that_sets_a_security_header_itself_gets_ours_instead(make_app) -> None:
    app = make_app()

    @app.get("/own-frame-options")
    def own_frame_options() -> tuple[str, int, dict[str, str]]:
        return "x", 200, {"X-Frame-Options": "SAMEORIGIN", "X-Custom": "kept"}

    response = app.test_client().get("/own-frame-options")
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    assert response.headers["X-Custom"] == "kept"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# -- health ----------------------------------------------------------------------------


def test_healthz_ok_with_a_working_database(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("where", ["missing-database", "closed-port"])
def test_healthz_503_when_the_database_is_unreachable(make_app, where: str) -> None:
    if where == "missing-database":
        url = "postgresql://postgres:hunter2@127.0.0.1:5432/donations_no_such_database"
    else:
        url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/donations"
    response = make_app(database=url).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}
    assert "hunter2" not in response.text


# -- rate limit ------------------------------------------------------------------------


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html)
    assert match, f"no hidden {name} field"
    return match.group(1)


def _checkout_form(client) -> dict[str, str]:
    page = client.get("/support/checkout?frequency=once&amount=10&currency=USD")
    assert page.status_code == 200
    return {
        "csrf_token": _hidden(page.text, "csrf_token"),
        "attempt": _hidden(page.text, "attempt"),
        "amount": _hidden(page.text, "amount"),
        "frequency": "once",
        "currency": "USD",
        "email": "reader@example.org",
        "name": "Ada Reader",
        "country": "GB",
    }


def _donations(app: Flask) -> int:
    with app.app_context():
        try:
            return int(db.session.scalar(select(func.count()).select_from(Donation)) or 0)
        finally:
            db.session.remove()


def test_checkout_post_is_rate_limited(make_app) -> None:
    limited = make_app(CHECKOUT_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    forms = [_checkout_form(client) for _ in range(5)]
    for number, form in enumerate(forms[:3], start=1):
        response = client.post("/support/checkout", data=form)
        assert response.status_code == 303, (number, response.text)
    assert _donations(limited) == 3

    refused = client.post("/support/checkout", data=forms[3])
    assert refused.status_code == 429
    assert "Too many attempts" in refused.text
    # No proxy is trusted (TRUSTED_PROXIES=0), so a made-up client address changes nothing.
    spoofed = client.post(
        "/support/checkout", data=forms[4], headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert spoofed.status_code == 429
    assert _donations(limited) == 3
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Reading the pages is not limited, and says nothing of limits.
    page = client.get("/support")
    assert page.status_code == 200
    assert not any(name.startswith("X-RateLimit") for name, _ in page.headers)
