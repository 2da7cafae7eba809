"""The privacy policy and the imprint: built in by default, or the newsroom's own."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.payments.stripe_flows import hidden

NEWSROOM = {
    "NEWSROOM_NAME": "Gazette of the Valley",
    "NEWSROOM_ADDRESS": "1 Press Street, Valleytown",
    "NEWSROOM_CONTACT_EMAIL": "readers@valley.example",
}


@pytest.mark.parametrize(
    ("lang", "privacy", "imprint"),
    [
        ("en", "Privacy policy", "Imprint and terms"),
        ("ru", "Политика конфиденциальности", "Выходные данные и условия"),
    ],
)
def test_the_built_in_pages_name_the_newsroom(
    make_app, lang: str, privacy: str, imprint: str
) -> None:
    client = make_app(**NEWSROOM).test_client()
    for path, title in (("/privacy", privacy), ("/imprint", imprint)):
        page = client.get(path, headers={"Accept-Language": lang})
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert f'<html lang="{lang}">' in text
        assert f'<h1 id="{path[1:]}-title">{title}</h1>' in text
        assert '<dd id="newsroom-name">Gazette of the Valley</dd>' in text
        assert '<dd id="newsroom-address">1 Press Street, Valleytown</dd>' in text
        assert 'href="mailto:readers@valley.example"' in text
        # The same for every reader of the language: cacheable, no cookie.
        assert page.headers["Cache-Control"].startswith("public")
        assert "Set-Cookie" not in page.headers


def test_the_contact_defaults_to_the_sender_of_our_emails(client) -> None:
    text = client.get("/privacy").get_data(as_text=True)
    # The session app sends as "Newsroom <support@newsroom.test>".
    assert 'href="mailto:support@newsroom.test"' in text
    assert "NEWSROOM_NAME" in text  # says what the operator has still to set


def test_every_reader_page_links_the_built_in_pages(client) -> None:
    for path in (
        "/support",
        "/reminders/new",
        "/support/checkout?frequency=once&currency=USD&amount=10",
    ):
        text = client.get(path).get_data(as_text=True)
        assert '<a href="/privacy">Privacy policy</a>' in text, path
        assert '<a href="/imprint">Imprint and terms</a>' in text, path


def test_the_newsrooms_own_pages_replace_the_built_in_ones(make_app) -> None:
    app: Flask = make_app(
        PRIVACY_POLICY_URL="https://valley.example/privacy?from=donate",
        IMPRINT_URL="https://valley.example/imprint",
    )
    client = app.test_client()
    details = client.get("/support/checkout?frequency=once&currency=USD&amount=10").text
    assert hidden(details, "attempt")
    assert details.count('href="https://valley.example/privacy?from=donate"') == 2  # text, footer
    assert 'href="https://valley.example/imprint"' in details
    signup = client.get("/reminders/new").text
    assert signup.count('href="https://valley.example/privacy?from=donate"') == 2
    assert 'href="/privacy"' not in details + signup
    # Old links and bookmarks to the built-in pages lead there.
    moved = client.get("/privacy")
    assert (moved.status_code, moved.headers["Location"]) == (
        302,
        "https://valley.example/privacy?from=donate",
    )
    assert client.get("/imprint").headers["Location"] == "https://valley.example/imprint"
