"""The frequency and amount buttons as an even grid, on phones and the desktop, in
English and Russian, on /support and in the embedded ask.

An even grid: the buttons of a group have one width and one height, every row but
the last is full, the last has more than one button unless every row has one, and
no label is wider than its button or the page wider than the phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.article_host import ArticleHost
from tests.e2e.flows import EXPECT_TIMEOUT, watch_for_script_errors
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

PHONES = (320, 360, 414)
DESKTOP = 1280
FREQUENCIES = {"en": ("Once", "Monthly", "Annual"), "ru": ("Разово", "Ежемесячно", "Ежегодно")}

MEASURE = """(group) => {
    const labels = [...group.querySelectorAll("label")].filter(l => l.offsetParent);
    const box = group.getBoundingClientRect();
    return labels.map(l => {
        const r = l.getBoundingClientRect();
        return {text: l.textContent.trim(), left: r.left, right: r.right, top: r.top,
                width: r.width, height: r.height,
                overflow: l.scrollWidth > l.clientWidth + 1,
                outside: r.right > box.right + 0.5 || r.left < box.left - 0.5};
    });
}"""


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Any]:
    contexts = []
    errors: list[str] = []

    def open_page(width: int) -> Page:
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        errors.extend(watch_for_script_errors(page))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == []


def rows_of(group: Locator, what: str) -> tuple[list[int], list[str]]:
    """The number of buttons in each row of ``group``, and what is uneven about them."""
    buttons = group.evaluate(MEASURE)
    problems = [f"{what}: {b['text']!r} does not fit its button" for b in buttons if b["overflow"]]
    problems += [f"{what}: {b['text']!r} sticks out of the group" for b in buttons if b["outside"]]
    if not buttons:
        return [], [f"{what}: no buttons"]
    for measure in ("width", "height"):
        sizes = [b[measure] for b in buttons]
        if max(sizes) - min(sizes) > 1:
            problems.append(f"{what}: {measure}s differ: {sizes}")
    tops: dict[int, int] = {}
    for b in buttons:
        top = round(b["top"])
        tops[top] = tops.get(top, 0) + 1
    rows = [tops[t] for t in sorted(tops)]
    if any(n != rows[0] for n in rows[:-1]) or rows[-1] > rows[0]:
        problems.append(f"{what}: rows are not even: {rows}")
    if len(rows) > 1 and rows[-1] == 1 and rows[0] != 1:
        problems.append(f"{what}: a lone button in the last row: {rows}")
    return rows, problems


def page_width_problems(page: Page, width: int, what: str) -> list[str]:
    scrolled = page.evaluate("document.documentElement.scrollWidth")
    return [f"{what}: the page is {scrolled} px wide"] if scrolled > width else []


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("width", [*PHONES, DESKTOP])
def test_the_ask_lays_its_choices_out_evenly(
    new_page: Any, live_server: LiveServer, lang: str, width: int
) -> None:
    page: Page = new_page(width)
    problems: list[str] = []
    for currency in ("USD", "EUR"):
        page.goto(f"{live_server.url}/support?lang={lang}&currency={currency}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        for label in FREQUENCIES[lang]:
            page.locator("fieldset.frequency label", has_text=label).click()
            what = f"{lang} {width} px {currency} {label}"
            frequency_rows, found = rows_of(page.locator("fieldset.frequency"), what)
            problems += found
            amounts = page.locator("fieldset.amounts:not([hidden])")
            expect(amounts).to_have_count(1)
            amount_rows, found = rows_of(amounts.locator(".grid"), what)
            problems += found + page_width_problems(page, width, what)
            # How it comes out with three frequencies and four amounts.
            if width == DESKTOP:
                assert (frequency_rows, amount_rows) == ([3], [4]), what
            else:
                assert (frequency_rows, amount_rows) == ([1, 1, 1], [2, 2]), what
    assert problems == []


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("width", [*PHONES, DESKTOP])
def test_the_embedded_ask_lays_its_choices_out_evenly(
    new_page: Any, live_server: LiveServer, lang: str, width: int
) -> None:
    host = ArticleHost(live_server.url)
    try:
        page: Page = new_page(width)
        page.goto(f"{host.url}/article?lang={lang}&article=layout-{width}")
        ask = page.locator(".dn-ask")
        expect(ask).to_be_visible()
        problems: list[str] = []
        for label in FREQUENCIES[lang]:
            ask.locator(".dn-choice label", has_text=label).first.click()
            what = f"embed {lang} {width} px {label}"
            frequency_rows, found = rows_of(ask.locator(".dn-choice").first, what)
            problems += found
            amount_rows, found = rows_of(ask.locator(".dn-amounts"), what)
            problems += found + page_width_problems(page, width, what)
            if width == DESKTOP:
                assert (frequency_rows, amount_rows) == ([3], [4]), what
            else:
                assert (frequency_rows, amount_rows) == ([1, 1, 1], [2, 2]), what
        assert problems == []
    finally:
        host.stop()
