"""An A/B test of the ask in a reader's browser: the variant is picked there, and kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from donations.ask.services import load_ask_config
from donations.db import commit, db, utcnow
from donations.embed.experiments.services import (
    assigned_index,
    create_experiment,
    parse_variants,
    start_experiment,
)
from donations.embed.models import EmbedCount, EmbedEvent
from donations.staff.models import Role
from donations.staff.services import create_staff
from tests.e2e.article_host import ArticleHost
from tests.e2e.conftest import PHONE
from tests.e2e.flows import poll
from tests.e2e.test_accessibility import AXE, check_page
from tests.e2e.test_embed_browser import Watched, host, shown_count, stored, watched
from tests.harness import LiveServer

__all__ = ["host", "watched"]  # fixtures, shared with the embed's own browser tests

pytestmark = pytest.mark.e2e

HEADLINES = {
    "control": "Independent journalism needs your support",
    "urgent": "We are short this month",
}
VARIANTS: list[dict[str, Any]] = [
    {"key": "control", "share": 50},
    {
        "key": "urgent",
        "share": 50,
        "headline": {"en": HEADLINES["urgent"], "ru": "Нам не хватает в этом месяце"},
        "default_frequency": "once",
    },
]


@pytest.fixture
def running(app: Flask) -> Iterator[str]:
    """A running experiment; its seed."""
    with app.app_context():
        experiment = create_experiment(
            slug="winter-copy",
            title="Winter copy",
            variants=parse_variants(VARIANTS, load_ask_config()),
            baseline=0.02,
            mde=0.2,
        )
        start_experiment(experiment)
        commit()
        seed = experiment.seed
        db.session.remove()
    yield seed
    app.extensions.pop("served_experiment", None)
    app.extensions.pop("embed_config", None)


def key_for(seed: str, reader_id: str) -> str:
    return [v["key"] for v in VARIANTS][assigned_index(seed, reader_id, [50, 50])]


def reader_in(seed: str, key: str) -> str:
    """A reader id the hash puts in ``key``'s half."""
    return next(rid for rid in (f"{n:032x}" for n in range(1, 1000)) if key_for(seed, rid) == key)


def visit(page: Page, url: str) -> str:
    """Load the article (forgetting the view cap, keeping the reader id): the headline shown."""
    page.goto(url)
    assert shown_count(page) == 1
    headline = page.locator(".dn-ask h2").inner_text()
    page.evaluate(
        """() => { const s = JSON.parse(localStorage.getItem('donations:ask'));
            s.views = []; localStorage.setItem('donations:ask', JSON.stringify(s)); }"""
    )
    return headline


def counted(app: Flask) -> dict[str, int]:
    with app.app_context():
        try:
            rows = db.session.execute(
                select(EmbedCount.variant, EmbedCount.count).where(
                    EmbedCount.event == EmbedEvent.IMPRESSION
                )
            ).all()
            return {str(variant): int(count) for variant, count in rows}
        finally:
            db.session.remove()


def test_the_variant_is_stable_across_visits_and_counted(
    watched: Watched, host: ArticleHost, live_server: LiveServer, app: Flask, running: str
) -> None:
    page = watched.page
    url = f"{host.url}/article?lang=en&article=budget-vote"
    first = visit(page, url)
    reader_id = stored(page)["rid"]
    assert re.fullmatch(r"[0-9a-f]{32}", reader_id)
    key = key_for(running, reader_id)
    assert first == HEADLINES[key]
    # Reloads and later visits: the same id, the same variant; no cookie anywhere.
    for _ in range(3):
        assert visit(page, url) == first
    assert stored(page)["rid"] == reader_id
    assert page.context.cookies() == []
    shown = [
        e["detail"]["variant"] for e in watched.events("event") if e["type"] == "donations:shown"
    ]
    assert shown == [f"winter-copy:{key}"] * 4
    # The server counted four impressions of that variant, and nothing about the reader.
    assert poll(lambda: counted(app).get(f"winter-copy:{key}") == 4, "four impressions")


def test_each_variant_changes_the_ask_and_travels_to_the_checkout(
    watched: Watched, host: ArticleHost, live_server: LiveServer, running: str
) -> None:
    page = watched.page
    url = f"{host.url}/article?lang=en&article=budget-vote"
    page.goto(url)
    assert shown_count(page) == 1
    for key in ("urgent", "control"):
        page.evaluate(
            """(rid) => localStorage.setItem('donations:ask', JSON.stringify({rid: rid}))""",
            reader_in(running, key),
        )
        assert visit(page, url) == HEADLINES[key]
        once = page.locator(".dn-ask").get_by_role("radio", name="Once", exact=True)
        if key == "urgent":
            expect(once).to_be_checked()  # this variant's default frequency
        else:
            expect(once).not_to_be_checked()
    # Control's reader goes on: the checkout carries the variant for attribution.
    page.locator(".dn-ask").get_by_role("button", name="Continue", exact=True).click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/support/checkout\?"))
    assert parse_qs(urlsplit(page.url).query)["variant"] == ["winter-copy:control"]


# -- the staff screens, at 360 px and desktop, in English and Russian ------------------------

ADMIN = "experiments@newsroom.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_page(browser: Browser, app: Flask) -> Iterator[tuple[Page, str]]:
    with app.app_context():
        staff = create_staff(ADMIN, Role.ADMIN, PASSWORD)
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = utcnow()
        secret = staff.totp_secret
        commit()
        db.session.remove()
    # bypass_csp only so that axe-core can be injected for the accessibility check.
    context = browser.new_context(viewport=PHONE, bypass_csp=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page, secret
    finally:
        context.close()


def test_staff_define_start_and_read_an_experiment_at_360_px(
    admin_page: tuple[Page, str], live_server: LiveServer, app: Flask
) -> None:
    page, secret = admin_page
    base = live_server.url
    page.goto(f"{base}/staff/")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Six-digit code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Back office").get_by_role(
        "link", name="Experiments"
    ).click()
    expect(page.get_by_role("heading", name="A/B tests of the ask")).to_be_visible()
    check_page(page, AXE, "experiments")
    page.get_by_label("Name (goes into the variant's attribution)").fill("winter-copy")
    page.get_by_label("What is tested").fill("Urgent headline")
    page.get_by_role("button", name="Create the experiment").click()
    expect(page.get_by_role("heading", name="winter-copy: Urgent headline")).to_be_visible()
    expect(page.get_by_text("No winner yet.")).to_be_visible()
    page.get_by_role("button", name="Start serving it").click()
    expect(page.get_by_text("Running: the embed serves it")).to_be_visible()
    with app.app_context():
        day = utcnow().date()
        for key, shown in (("control", 1000), ("urgent", 1000)):
            db.session.add(
                EmbedCount(
                    day=day, event=EmbedEvent.IMPRESSION, variant=f"winter-copy:{key}", count=shown
                )
            )
        commit()
        db.session.remove()
    page.reload()
    expect(page.locator("#variant-urgent")).to_contain_text("1000 / 21109")
    check_page(page, AXE, "experiment results")
    page.goto(page.url + "?lang=ru")
    expect(page.get_by_text("Победителя пока нет.")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    check_page(page, AXE, "experiment results in Russian")
