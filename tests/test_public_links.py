"""Every public page, in English and Russian, and every internal link on it, followed.

The pages are reached as a reader reaches them -- a gift paid in the simulator,
a plan, a reminder, an expired checkout, a broken link -- and each internal
link, stylesheet, script and image they name is requested in turn (and the
pages those lead to, breadth first), with no cookie and in the same
language. None may answer 404 or a 5xx; a link to a fragment must find its
target in the page; a form's action must be a route for its method.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed, NotFound

from donations.db import db
from donations.mail.suppression import address_hash
from donations.reminders.services import link_token, opt_in_token, unsubscribe_token
from donations.supporters.models import Consent, ConsentTopic
from tests.payments.stripe_flows import give, start_gift, stripe_api, subscribe
from tests.reminders.test_views import csrf_token, reminders, signup_form

LANGUAGES = ("en", "ru")
# Enough for every page reachable from the seeds (about 60 a language today).
MAX_PAGES = 400


class Links(HTMLParser):
    """What a page points at: links, assets, form actions, and the ids it has."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "html":
            self.lang = a.get("lang")
        if tag in ("a", "link") and "href" in a:
            self.links.append(a["href"])
        if tag in ("script", "img", "iframe") and "src" in a:
            self.links.append(a["src"])
        if tag == "form":
            self.forms.append((a.get("method", "get").upper(), a.get("action", "")))


def parse(html: str) -> Links:
    found = Links()
    found.feed(html)
    return found


@dataclass
class Crawl:
    app: Flask
    lang: str
    base: str
    visited: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def client(self) -> FlaskClient:
        # No cookie: a language switch followed on one page must not change the next.
        client = self.app.test_client(use_cookies=False)
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = self.lang
        return client

    def internal(self, url: str, page: str) -> str | None:
        """``url`` (found on ``page``) as path?query if it is ours, else None."""
        absolute = urljoin(self.base + page, url)
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or parts.netloc != urlsplit(self.base).netloc:
            return None
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def check_page(self, page: str, html: str, queue: deque[str]) -> None:
        links = parse(html)
        if links.lang != self.lang and "/static/" not in page:
            self.problems.append(f"{page}: <html lang={links.lang!r}>, wanted {self.lang}")
        for href in links.links:
            if href.startswith("#"):
                if href[1:] and href[1:] not in links.ids:
                    self.problems.append(f"{page}: link to {href}, which the page lacks")
                continue
            target = self.internal(href, page)
            if target is not None and target not in self.visited:
                queue.append(target)
        adapter = self.app.url_map.bind("localhost")
        for method, action in links.forms:
            target = self.internal(action or page, page)
            if target is None:
                self.problems.append(f"{page}: a form posts off the site, to {action}")
                continue
            if method == "GET":
                if target not in self.visited:
                    queue.append(target)
                continue
            try:
                adapter.match(urlsplit(target).path, method=method)
            except (NotFound, MethodNotAllowed):
                self.problems.append(f"{page}: a form {method}s to {action}, which is no route")

    def fetch(self, url: str) -> str:
        answer = self.client().get(url, follow_redirects=True)
        try:
            self.visited[url] = answer.status_code
            # Where the links led, e.g. the language switch back to the page it is on.
            landed = answer.request.full_path.rstrip("?")
            broken = answer.status_code == 404 or answer.status_code >= 500
            if broken and self.expected.get(landed) != answer.status_code:
                self.problems.append(f"{url}: {answer.status_code}")
            return answer.get_data(as_text=True) if answer.mimetype == "text/html" else ""
        finally:
            answer.close()

    def run(self, seeds: dict[str, tuple[int, str]]) -> None:
        """``seeds``: each page's URL, its status and the HTML a reader saw there.

        A seed that is a 404 on purpose (a broken link from an email) stays one
        when reached again, e.g. through its own language switch.
        """
        queue: deque[str] = deque()
        for url, (status, html) in seeds.items():
            self.visited[url] = self.expected[url] = status
            self.check_page(url, html, queue)
        while queue:
            url = queue.popleft()
            if url in self.visited:
                continue
            assert len(self.visited) < MAX_PAGES, "the crawl does not end: a link loop?"
            html = self.fetch(url)
            if html:
                self.check_page(url, html, queue)


def seen(client: FlaskClient, url: str, status: int = 200) -> tuple[str, tuple[int, str]]:
    answer = client.get(url)
    assert answer.status_code == status, (url, answer.status_code, answer.text[:500])
    return url, (status, answer.get_data(as_text=True))


def public_pages(app: Flask, simulator: object, lang: str) -> dict[str, tuple[int, str]]:
    """Every kind of page a reader can see, reached the way a reader reaches it."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = lang
    email = f"crawl-{lang}@example.org"
    pages = dict(
        [
            seen(client, "/support"),
            seen(client, "/support?frequency=annual&currency=EUR&amount=100"),
            seen(client, "/support/checkout?frequency=once&currency=USD&amount=10"),
            seen(client, "/support/checkout?frequency=monthly&currency=EUR&amount=10"),
            # A refused amount: the ask again, with the reason at the field.
            seen(client, "/support/checkout?frequency=once&currency=USD&custom_amount=0", 400),
            seen(client, "/reminders/new?frequency=monthly&currency=EUR&amount=20"),
            seen(client, "/privacy"),
            seen(client, "/imprint"),
            seen(client, "/no-such-page", 404),
            # Broken links from emails.
            seen(client, "/support/plan/not-a-link/payment-method", 404),
            seen(client, "/reminders/unsubscribe/not-a-token", 400),
            seen(client, "/reminders/again/not-a-token", 400),
        ]
    )
    # The embed: its no-script fallback link, and where its buttons lead.
    config = client.get(f"/embed/config.json?lang={lang}").get_json()
    choice = {"frequency": "monthly", "currency": "USD", "amount": "10", "article": "a-1"}
    for url in ("/support", config["urls"]["checkout"], config["urls"]["remind"]):
        path = urlsplit(url).path
        query = "" if url == "/support" else "?" + urlencode(choice)
        pages.update([seen(client, path + query)])

    # Paying: the payment step (card; euros, with SEPA), a paid gift's thank-you page.
    pages.update([seen(client, start_gift(client, email=email).pay_url)])
    pages.update([seen(client, start_gift(client, currency="EUR", email=email).pay_url)])
    pages.update([seen(client, give(client, simulator, email=email).thanks_url)])
    plan = subscribe(client, simulator, email=f"plan-{lang}@example.org")
    pages.update([seen(client, f"/support/thanks/{plan.public_token}")])
    # A checkout whose payment was cancelled at Stripe: "no longer open".
    expired = start_gift(client, email=email)
    stripe_api(simulator, "POST", f"/v1/payment_intents/{expired.intent_id}/cancel")
    pages.update([seen(client, expired.pay_url, 410)])

    # Remind me later: the confirmation, the email's link back, unsubscribing.
    signed_up = client.post("/reminders/new", data=signup_form(client, email=email))
    assert signed_up.status_code == 303, signed_up.text
    pages.update([seen(client, "/reminders/scheduled")])
    reminder = reminders()[-1]
    pages.update([seen(client, f"/support?reminder={link_token(reminder.id)}")])
    token = unsubscribe_token(address_hash(email))
    url, (status, html) = seen(client, f"/reminders/unsubscribe/{token}")
    pages[url] = (status, html)
    done = client.post(
        f"/reminders/unsubscribe/{token}/confirm",
        data={"csrf_token": csrf_token(html)},
        follow_redirects=True,
    )
    assert done.status_code == 200, done.text
    pages[f"/reminders/unsubscribe/{token}/confirm"] = (200, done.get_data(as_text=True))
    # Asking again after unsubscribing: the double opt-in email's page.
    again = client.post("/reminders/new", data=signup_form(client, email=email))
    assert again.status_code == 303, again.text
    consent = db.session.scalars(
        select(Consent).where(Consent.topic == ConsentTopic.REMINDERS).order_by(Consent.id.desc())
    ).first()
    assert consent is not None
    pages.update([seen(client, f"/reminders/again/{opt_in_token(consent.id)}")])
    return pages


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_link_on_a_public_page_is_broken(app: Flask, ctx, simulator, lang: str) -> None:
    pages = public_pages(app, simulator, lang)
    crawl = Crawl(app, lang, app.config["SETTINGS"].base_url)
    crawl.run(pages)

    assert crawl.problems == []
    # It did go everywhere: the built-in pages, from the footer of every page.
    for path in ("/privacy", "/imprint", "/static/css/site.css"):
        assert path in crawl.visited, sorted(crawl.visited)
    assert len(crawl.visited) > 30, sorted(crawl.visited)
    for url, (_, html) in pages.items():
        assert re.search(r'href="/privacy"', html), f"{url} has no privacy link"
