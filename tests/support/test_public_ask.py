"""The ask is a public page: cacheable, the same for every anonymous reader (issue 15 item 1)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from flask import Flask, request_started

from donations.ask.config import DEMO_ASK
from donations.ask.services import save_ask_config

UK = {"Accept-Language": "en-GB,en;q=0.9"}


@pytest.fixture
def anonymous(app: Flask):
    """A client that never keeps a cookie: each request is a new anonymous reader."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """The paths of the requests that reached Flask (not answered in front of it)."""
    seen: list[str] = []

    def started(sender: Flask, **_: object) -> None:
        from flask import request

        # The live server shares the app: a late Stripe event of an earlier
        # test may reach it meanwhile, and is not one of this test's requests.
        if request.path.startswith("/support"):
            seen.append(request.path)

    request_started.connect(started, app)
    yield seen
    request_started.disconnect(started, app)


def test_anonymous_ask_is_public_and_sets_no_cookie(anonymous) -> None:
    page = anonymous.get("/support", headers=UK)
    assert page.status_code == 200
    assert 'id="ask-form"' in page.text
    assert "Set-Cookie" not in page.headers
    control = page.headers["Cache-Control"]
    assert control.startswith("public, max-age=")
    assert "stale-while-revalidate=" in control
    assert page.headers["Vary"] == "Accept-Language"
    assert page.headers["ETag"]
    # The security headers are still there, on the kept copy too.
    again = anonymous.get("/support", headers=UK)
    for name in ("Content-Security-Policy", "X-Frame-Options", "ETag", "Cache-Control"):
        assert again.headers[name] == page.headers[name]
    assert again.data == page.data


def test_repeat_is_answered_without_running_flask(anonymous, flask_requests) -> None:
    anonymous.get("/support?frequency=once&p=1", headers=UK)
    anonymous.get("/support?frequency=once&p=1", headers=UK)
    anonymous.get("/support?frequency=once&p=1", headers=UK)
    assert flask_requests == ["/support"]
    # A different language is a different page, built by Flask.
    russian = anonymous.get("/support?frequency=once&p=1", headers={"Accept-Language": "ru"})
    assert '<html lang="ru">' in russian.text
    assert flask_requests == ["/support", "/support"]


def test_if_none_match_gets_304(anonymous) -> None:
    page = anonymous.get("/support", headers=UK)
    etag = page.headers["ETag"]
    unchanged = anonymous.get("/support", headers={**UK, "If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.data == b""
    assert unchanged.headers["ETag"] == etag
    assert unchanged.headers["Cache-Control"] == page.headers["Cache-Control"]
    other = anonymous.get("/support", headers={**UK, "If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_etag_and_page_change_with_the_settings(app: Flask, anonymous) -> None:
    before = anonymous.get("/support", headers=UK)
    changed = copy.deepcopy(DEMO_ASK)
    changed["headline"]["en"] = "A brand new headline for the appeal"
    with app.test_request_context():
        save_ask_config(changed)
        from donations.db import commit

        commit()
    after = anonymous.get("/support", headers=UK)
    assert "A brand new headline for the appeal" in after.text
    assert after.headers["ETag"] != before.headers["ETag"]
    stale = anonymous.get("/support", headers={**UK, "If-None-Match": before.headers["ETag"]})
    assert stale.status_code == 200


def test_reader_with_a_cookie_gets_a_private_answer(client) -> None:
    """A chosen language lives in the reader's cookie: their page is theirs."""
    assert client.get("/language/ru?next=/support").status_code == 302
    page = client.get("/support", headers=UK)
    assert '<html lang="ru">' in page.text
    assert page.headers["Cache-Control"].startswith("private")
    # Public caches must not hand this page to someone else.
    assert "public" not in page.headers["Cache-Control"]


def test_language_chosen_in_the_url_is_never_public(anonymous) -> None:
    for _ in range(2):
        page = anonymous.get("/support?lang=ru", headers=UK)
        assert '<html lang="ru">' in page.text
        assert "Set-Cookie" in page.headers  # the choice sticks for this reader
        assert page.headers["Cache-Control"].startswith("private")
