"""Helpers for the portal's tests: signing in through the emailed link, reading mail."""

from __future__ import annotations

import html
import re
from email.message import EmailMessage

from flask import g
from flask.testing import FlaskClient

from donations.db import commit
from donations.supporters.models import Supporter
from donations.supporters.services import find_or_create_supporter
from tests.harness import Mailbox


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def other_browser(client: FlaskClient) -> FlaskClient:
    """Another browser of the same app.

    Under the ``ctx`` fixture every request shares the test's app context,
    and Flask-WTF keeps the form token it made in ``g``: forget it, or the
    next page would show one browser's token to the other.
    """
    g.pop("csrf_token", None)
    return client


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def links_in(message: EmailMessage, path: str) -> list[str]:
    """Every absolute link to ``path…`` in the plain-text part, as a path."""
    found = re.findall(rf"https?://[^/\s]+({re.escape(path)}[^\s\"<]*)", text_of(message))
    return [html.unescape(link) for link in found]


def supporter(email: str = "member@example.org", name: str = "Ada Member") -> Supporter:
    row = find_or_create_supporter(email=email, locale="en")
    row.name = name
    commit()
    return row


def ask_for_link(client: FlaskClient, email: str):
    other_browser(client)
    page = client.get("/manage")
    assert page.status_code == 200, page.text
    return client.post("/manage", data={"csrf_token": csrf_token(page.text), "email": email})


def emailed_link(mailbox: Mailbox, count: int = 1) -> str:
    messages = mailbox.wait_for(count)
    assert len(messages) >= count, "the sign-in link was not emailed"
    links = links_in(messages[count - 1], "/manage/link/")
    assert len(links) == 1, text_of(messages[count - 1])
    return links[0]


def continue_with(client: FlaskClient, link: str):
    other_browser(client)
    page = client.get(link)
    if page.status_code != 200:
        return page
    return client.post(link, data={"csrf_token": csrf_token(page.text)})


def sign_in(client: FlaskClient, mailbox: Mailbox, email: str) -> str:
    """Sign in by the emailed link; returns the account page."""
    mailbox.messages.clear()
    assert ask_for_link(client, email).status_code == 303
    done = continue_with(client, emailed_link(mailbox))
    assert done.status_code == 303, done.text
    assert done.headers["Location"].endswith("/manage/account")
    account = client.get("/manage/account")
    assert account.status_code == 200
    return account.text
