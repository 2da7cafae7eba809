"""The embedded ask on a newsroom's article page served from another origin.

The article page has a strict content security policy of its own; the ask must
render inside it, fetch nothing from third parties before the reader acts,
be accessible at 360 px and desktop, and speak the page's language.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from donations.ask.config import DEMO_ASK
from donations.ask.services import save_ask_config
from donations.db import commit, db, utcnow
from donations.embed.models import EmbedCount
from donations.support.campaigns import create_campaign, forget_meter, meter_for
from donations.support.models import Campaign
from donations.support.supporter_mark import supporter_mark_valid
from tests.e2e.article_host import AXE, ArticleHost
from tests.e2e.conftest import PHONE
from tests.e2e.flows import (
    CARD_OK,
    EXPECT_TIMEOUT,
    THANKS_URL,
    donations,
    enter_card,
    fill_details,
    normalise,
    plans,
    poll,
    unique_email,
    watch_for_script_errors,
)
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 900}
BLOCKING = {"serious", "critical"}

# The host page records what the ask tells it, through both channels, on the console
# (it survives the navigation to the checkout).
RECORD_EVENTS = """
for (const type of ["shown", "dismissed", "used"]) {
  document.addEventListener("donations:" + type, (e) =>
    console.log("event " + JSON.stringify({type: e.type, detail: e.detail})));
}
window.addEventListener("message", (e) => {
  if (e.origin === location.origin && String(e.data && e.data.type).startsWith("donations:")) {
    console.log("message " + JSON.stringify(e.data));
  }
});
"""

ENGLISH = {
    "lang": "en",
    "frequencies": ["Once", "Monthly", "Annual"],
    "continue": "Continue",
    "remind": "Remind me later",
    "not_ready": "Not ready to support today?",
    "currency": "Currency",
    "close": "Close",
    "how_often": "How often?",
}
RUSSIAN = {
    "lang": "ru",
    "frequencies": ["Разово", "Ежемесячно", "Ежегодно"],
    "continue": "Продолжить",
    "remind": "Напомнить позже",
    "not_ready": "Не готовы поддержать нас сегодня?",
    "currency": "Валюта",
    "close": "Закрыть",
    "how_often": "Как часто?",
}


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture(scope="module")
def host(live_server: LiveServer) -> Iterator[ArticleHost]:
    server = ArticleHost(live_server.url)
    yield server
    server.stop()


class Watched:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.console: list[str] = []
        self.errors = watch_for_script_errors(page)
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.console.append(m.text))
        # axe-core itself applies inline styles the page's policy refuses: what the
        # page logs after axe starts is not the embed's.
        self.until: int | None = None

    def events(self, channel: str) -> list[dict[str, Any]]:
        prefix = channel + " "
        return [json.loads(m[len(prefix) :]) for m in self.console if m.startswith(prefix)]

    def csp_violations(self) -> list[str]:
        return [m for m in self.console[: self.until] if "Content Security Policy" in m]


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport=PHONE)
    context.add_init_script(RECORD_EVENTS)
    try:
        watcher = Watched(context.new_page())
        yield watcher
        assert watcher.errors == [], watcher.errors
        assert watcher.csp_violations() == [], watcher.csp_violations()
    finally:
        context.close()


def axe_findings(page: Page, host: ArticleHost) -> list[dict[str, Any]]:
    # From the host's own origin: its policy allows 'self' scripts, not inline ones.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=f"{host.url}/axe.min.js")
    return list(
        page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ["violations", "incomplete"]});
                return r.violations.concat(r.incomplete).map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target)}));
            }"""
        )
    )


def origins(urls: list[str]) -> set[str]:
    return {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls}


@pytest.mark.parametrize("words", [ENGLISH, RUSSIAN], ids=["en", "ru"])
def test_the_ask_renders_in_an_article_on_another_origin(
    watched: Watched, host: ArticleHost, live_server: LiveServer, words: dict[str, Any]
) -> None:
    assert AXE.is_file(), "axe-core is missing: run `make install` (npm ci) first"
    page = watched.page
    page.goto(f"{host.url}/article?lang={words['lang']}&article=budget-vote")
    ask = page.locator(".dn-ask")
    expect(ask).to_be_visible()
    expect(ask).to_have_attribute("lang", words["lang"])

    how_often = ask.get_by_role("group", name=words["how_often"])
    for label in words["frequencies"]:
        expect(how_often.get_by_role("radio", name=label, exact=True)).to_be_attached()
    expect(ask.get_by_role("radio", name=words["frequencies"][1], exact=True)).to_be_checked()
    expect(ask.get_by_role("radio")).to_have_count(3 + 4)
    expect(ask.get_by_label(words["currency"])).to_be_visible()
    expect(ask.get_by_role("button", name=words["continue"], exact=True)).to_be_visible()
    expect(ask.get_by_role("link", name=words["remind"])).to_be_visible()
    assert words["not_ready"] in normalise(ask.inner_text())
    expect(ask.get_by_role("button", name=words["close"])).to_be_visible()
    expect(ask.locator(".dn-mark-card")).to_be_visible()

    # Before the reader does anything, only the article's origin and ours were asked.
    assert origins(watched.requests) == {host.url, live_server.url}, watched.requests
    # The page heard it was shown, by event and by message.
    detail = {"article": "budget-vote", "campaign": "", "variant": ""}
    assert watched.events("event") == [{"type": "donations:shown", "detail": detail}]
    assert watched.events("message") == [{"type": "donations:shown", **detail}]

    assert watched.csp_violations() == []
    watched.until = len(watched.console)
    failures = []
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        if size is PHONE:
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"scrolls sideways at 360 px ({width} px)"
        failures += [f for f in axe_findings(page, host) if f["impact"] in BLOCKING]
    assert failures == [], json.dumps(failures, ensure_ascii=False, indent=1)


def test_continue_opens_the_checkout_prefilled(
    watched: Watched, host: ArticleHost, live_server: LiveServer
) -> None:
    page = watched.page
    page.goto(f"{host.url}/article?lang=en&article=budget-vote&campaign=winter")
    ask = page.locator(".dn-ask")
    ask.get_by_label("Currency").select_option("EUR")
    expect(ask.locator(".dn-mark-sepa_debit")).to_have_text("SEPA Direct Debit")
    ask.locator("label", has_text=re.compile(r"^Monthly$")).click()
    ask.locator("label", has_text="€20.00").click()
    expect(ask.get_by_role("radio", name="€20.00")).to_be_checked()
    ask.get_by_role("button", name="Continue", exact=True).click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/support/checkout\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["frequency"] == ["monthly"]
    assert query["currency"] == ["EUR"]
    assert query["amount"] == ["20.00"]
    assert query["article"] == ["budget-vote"]
    assert query["campaign"] == ["winter"]
    expect(page.locator("#gift-summary")).to_contain_text("€20.00")
    used = [e for e in watched.events("event") if e["type"] == "donations:used"]
    assert used == [
        {
            "type": "donations:used",
            "detail": {
                "action": "continue",
                "article": "budget-vote",
                "campaign": "winter",
                "variant": "",
            },
        }
    ]


def test_remind_me_later_from_the_embed(
    watched: Watched, host: ArticleHost, live_server: LiveServer
) -> None:
    page = watched.page
    page.goto(f"{host.url}/article?lang=ru&article=budget-vote")
    ask = page.locator(".dn-ask")
    ask.locator("label", has_text=re.compile(r"^Разово$")).click()
    ask.get_by_label("Другая сумма").fill("15")
    ask.get_by_role("link", name="Напомнить позже").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/reminders/new\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert (query["frequency"], query["amount"]) == (["once"], ["15"])
    assert query["source"] == [f"{host.url}/article"]
    expect(page.locator("#remind-gift")).to_be_visible()


def test_dismissing_tells_the_page(watched: Watched, host: ArticleHost) -> None:
    page = watched.page
    page.goto(f"{host.url}/article?lang=en")
    page.locator(".dn-ask").get_by_role("button", name="Close").click()
    expect(page.locator(".dn-ask")).to_have_count(0)
    types = [e["type"] for e in watched.events("message")]
    assert types == ["donations:shown", "donations:dismissed"]


# -- view caps, dismissal and the supporter mark (the reader's browser only) ----------------


def stored(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("JSON.parse(localStorage.getItem('donations:ask') || '{}')"))


def shown_count(page: Page) -> int:
    """Wait for the embed to decide (its fetch is asynchronous), then say if the ask shows."""
    # A locator, not wait_for_function: polling a predicate evaluates a string, which
    # the article's CSP (no 'unsafe-eval') refuses whenever the first check is too early.
    page.locator(".dn-ask, [data-donations-ask][hidden]").first.wait_for(state="attached")
    return page.locator(".dn-ask").count()


def test_the_ask_shows_at_most_three_times_a_week(watched: Watched, host: ArticleHost) -> None:
    page = watched.page
    seen = []
    for _ in range(4):
        page.goto(f"{host.url}/article?lang=en")
        seen.append(shown_count(page))
    assert seen == [1, 1, 1, 0]
    assert len(stored(page)["views"]) == 3
    # The fallback link is hidden too; no cookie was set on either origin.
    expect(page.locator("[data-donations-ask]")).to_be_hidden()
    assert page.context.cookies() == []
    # A week later the views have aged out.
    page.evaluate(
        """() => { const s = JSON.parse(localStorage.getItem('donations:ask'));
            s.views = s.views.map(t => t - 8 * 864e5);
            localStorage.setItem('donations:ask', JSON.stringify(s)); }"""
    )
    page.goto(f"{host.url}/article?lang=en")
    assert shown_count(page) == 1


def test_not_again_for_thirty_days_after_closing(watched: Watched, host: ArticleHost) -> None:
    page = watched.page
    page.goto(f"{host.url}/article?lang=en")
    page.locator(".dn-ask").get_by_role("button", name="Close").click()
    page.goto(f"{host.url}/article?lang=en")
    assert shown_count(page) == 0
    page.evaluate(
        """() => { const s = JSON.parse(localStorage.getItem('donations:ask'));
            s.dismissed -= 31 * 864e5; s.views = [];
            localStorage.setItem('donations:ask', JSON.stringify(s)); }"""
    )
    page.goto(f"{host.url}/article?lang=en")
    assert shown_count(page) == 1


def test_a_reader_gives_monthly_from_the_article_and_is_not_asked_again(
    watched: Watched, host: ArticleHost, live_server: LiveServer, app: Flask
) -> None:
    with app.app_context():
        now = utcnow()
        create_campaign(
            slug="winter",
            title={"en": "Winter appeal"},
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=30),
            goal=100_000,
            currency="USD",
        )
        commit()
        forget_meter()
        app.extensions.pop("embed_config", None)
    page = watched.page
    page.goto(f"{host.url}/article?lang=en&article=budget-vote&variant=b")
    ask = page.locator(".dn-ask")
    # The running campaign's meter shows, and the gift is credited to it.
    expect(ask.get_by_label("Winter appeal: $0.00 raised of $1,000.00")).to_be_visible()
    expect(ask.get_by_role("radio", name="Monthly", exact=True)).to_be_checked()
    ask.get_by_role("button", name="Continue", exact=True).click()
    expect(page.locator("#gift-summary")).to_have_text("$10.00 every month")
    fill_details(page, unique_email())
    enter_card(page, CARD_OK)
    button = page.get_by_role("button", name="Give $10.00", exact=True)
    expect(button).to_be_enabled()
    button.click()
    expect(page).to_have_url(THANKS_URL)

    (plan,) = plans(app)
    assert (plan.article, plan.campaign, plan.variant) == ("budget-vote", "winter", "b")
    assert plan.source == f"{host.url}/article"
    (first,) = donations(app)
    assert (first.article, first.campaign, first.variant) == ("budget-vote", "winter", "b")
    with app.app_context():
        campaign = db.session.scalar(select(Campaign))
        assert meter_for(campaign).raised == 1000  # the plan's first payment, $10.00
        db.session.remove()

    # Back to the article: the mark comes along in the fragment, stays in the article's
    # origin, and the ask keeps quiet.
    page.get_by_role("link", name="Back to the article").click()
    expect(page).to_have_url(f"{host.url}/article")
    assert shown_count(page) == 0
    with app.app_context():
        assert supporter_mark_valid(stored(page)["supporter"])
    page.goto(f"{host.url}/article?lang=en")
    assert shown_count(page) == 0


@pytest.fixture
def upsell_on(app: Flask) -> Iterator[None]:
    data = copy.deepcopy(DEMO_ASK)
    data["embed"] = {"upsell": True}
    with app.app_context():
        save_ask_config(data)
        commit()
    yield
    app.extensions.pop("ask_config_cache", None)


def test_once_then_the_monthly_offer(
    watched: Watched, host: ArticleHost, live_server: LiveServer, app: Flask, upsell_on: None
) -> None:
    page = watched.page
    page.goto(f"{host.url}/article?lang=en&article=budget-vote")
    ask = page.locator(".dn-ask")
    ask.locator("label", has_text=re.compile(r"^Once$")).click()
    expect(ask.get_by_role("radio", name="$25.00")).to_be_checked()
    ask.get_by_role("button", name="Continue", exact=True).click()
    offer = ask.get_by_role("group", name="Would you give monthly instead?")
    expect(offer).to_be_focused()
    watched.until = len(watched.console)
    blocking = [f for f in axe_findings(page, host) if f["impact"] in BLOCKING]
    assert blocking == [], blocking
    offer.get_by_role("button", name="Yes, $10.00 a month").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/support/checkout\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert (query["frequency"], query["amount"], query["upsell"]) == (
        ["monthly"],
        ["10.00"],
        ["accepted"],
    )
    expect(page.locator("#gift-summary")).to_have_text("$10.00 every month")

    def counted() -> dict[str, int]:
        with app.app_context():
            try:
                rows = db.session.execute(select(EmbedCount.event, EmbedCount.count)).all()
                return {str(e): c for e, c in rows}
            finally:
                db.session.remove()

    assert (
        poll(lambda: "upsell_accepted" in counted() and counted(), "the counters")["upsell_offered"]
        == 1
    )
