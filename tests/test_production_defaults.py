"""Production defaults: URLs from BASE_URL, no path tokens in access logs, thank-you
pages that expire, SECRET_KEY rotation, the dev key file's mode."""

from __future__ import annotations

import logging
import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from donations.db import commit, db, utcnow
from donations.reminders.services import hash_from_unsubscribe_token, unsubscribe_token
from donations.security import REDACTED, SecretPathFilter
from donations.supporters.models import Donation
from tests.harness import SECRET_KEY
from tests.support.test_checkout import details_form


def _pay_page(client) -> str:
    started = client.post("/support/checkout", data=details_form(client))
    assert started.status_code == 303
    page = client.get(started.headers["Location"])
    assert page.status_code == 200
    return page.text


def test_return_url_comes_from_base_url_not_the_host_header(make_app, app_port: int) -> None:
    proxied = make_app(TRUSTED_PROXIES="1", BASE_URL="http://donate.example.org")
    client = proxied.test_client()
    client.environ_base.update(
        {"HTTP_X_FORWARDED_HOST": "evil.example", "HTTP_HOST": "also-evil.example"}
    )
    html = _pay_page(client)
    return_url = re.search(r'data-return-url="([^"]+)"', html)
    assert return_url, "no return URL on the payment page"
    assert return_url.group(1).startswith("http://donate.example.org/support/thanks/")


def test_x_forwarded_host_is_not_believed_even_from_a_trusted_proxy(make_app) -> None:
    proxied = make_app(TRUSTED_PROXIES="1")
    with proxied.test_request_context(
        "/", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "203.0.113.9"}
    ):
        from flask import request

        proxied.wsgi_app(request.environ, lambda *_: None)  # through ProxyFix
        assert request.environ.get("HTTP_HOST") != "evil.example"


def test_path_tokens_are_kept_out_of_access_logs(app: Flask) -> None:
    redactor = SecretPathFilter(app.url_map)
    with app.app_context():
        token = unsubscribe_token("a" * 64)
    lines = [
        f'"GET /support/pay/tok_{token[:20]} HTTP/1.1" 200 -',
        f'"GET /support/thanks/{token[:20]}?x=1 HTTP/1.1" 200 -',
        f'"GET /support/plan/{token}/payment-method HTTP/1.1" 200 -',
        f'"POST /reminders/unsubscribe/{token}/confirm HTTP/1.1" 303 -',
    ]
    for line in lines:
        record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, "%s", (line,), None)
        redactor.filter(record)
        shown = record.getMessage()
        assert REDACTED in shown
        assert token[:20] not in shown
    # gunicorn passes its atoms as a dict
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(r)s", ({"r": lines[0]},), None
    )
    redactor.filter(record)
    assert token[:20] not in record.getMessage()
    assert redactor in logging.getLogger("werkzeug").filters or any(
        isinstance(f, SecretPathFilter) for f in logging.getLogger("werkzeug").filters
    )


def test_thank_you_pages_expire(client, ctx, simulator) -> None:
    from tests.support.test_checkout import client_secret_of

    html = _pay_page(client)
    simulator.confirm(client_secret_of(html))
    donation = db.session.scalar(select(Donation))
    thanks = f"/support/thanks/{donation.public_token}"
    assert client.get(thanks).status_code == 200
    db.session.execute(update(Donation).values(created_at=utcnow() - timedelta(days=31)))
    commit()
    expired = client.get(thanks)
    assert expired.status_code == 410
    assert "This thank-you page has expired" in expired.text


def test_signed_links_survive_a_key_rotation(make_app) -> None:
    import secrets

    from donations.payments.recurring import plan_link_serializer

    old = make_app()
    with old.app_context():
        link = plan_link_serializer().dumps("public-token")
        reminder_link = unsubscribe_token("b" * 64)
    new_key = secrets.token_urlsafe(48)
    rotated = make_app(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=SECRET_KEY)
    with rotated.app_context():
        assert plan_link_serializer().loads(link) == "public-token"
        assert hash_from_unsubscribe_token(reminder_link) == "b" * 64
        fresh = plan_link_serializer().dumps("public-token")
    forgotten = make_app(SECRET_KEY=new_key)
    with forgotten.app_context():
        from itsdangerous import BadSignature

        assert plan_link_serializer().loads(fresh) == "public-token"
        with pytest.raises(BadSignature):
            plan_link_serializer().loads(link)


def test_the_dev_key_file_is_created_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devtools import embedded

    monkeypatch.setattr(embedded, "INSTANCE", tmp_path / "instance")
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        key = embedded._secret_key()
    finally:
        os.umask(old_umask)
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert embedded._secret_key() == key
