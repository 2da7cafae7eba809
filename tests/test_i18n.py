"""Russian translation: catalogue completeness, locale selection, pages and email.

English is the source language, so it needs no catalogue of its own; Russian
lives in translations/ru. When strings change, refresh the catalogue with::

    pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs '.* __pycache__' \
        -o translations/messages.pot .
    pybabel update -i translations/messages.pot -d translations

then translate the new (empty or fuzzy) entries and ``pybabel compile -d translations``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import get_babel

from donations.mail.models import EmailMessage
from donations.mail.sender import render_email

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
RU_PO = TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.po"
RU_MO = RU_PO.with_suffix(".mo")

# Keep in step with the extract command in the module docstring and babel.cfg.
# --ignore-dirs replaces Babel's default, which would skip templates/_macros.
EXTRACT_ARGS = (
    "-F",
    "babel.cfg",
    "-k",
    "_l",
    "-k",
    "lazy_gettext",
    "--ignore-dirs",
    ".* __pycache__",
)

RU_HEADLINE = "Независимой журналистике нужна ваша поддержка"
RU_ASK_LABELS = ("Разово", "Ежемесячно", "Ежегодно", "Продолжить", "Напомнить позже")
EN_ASK_LABELS = ("Once", "Monthly", "Annual", "Continue", "Remind me later")


def pybabel(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )


def load(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def ids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {m.id for m in catalog if m.id}


@pytest.fixture(scope="module", autouse=True)
def _compiled_catalogue(app: Flask) -> None:
    """``make install`` compiles the catalogues; do it here too if the .mo is missing or stale."""
    if RU_MO.exists() and RU_MO.stat().st_mtime >= RU_PO.stat().st_mtime:
        return
    pybabel("compile", "-d", str(TRANSLATIONS))
    with app.app_context():  # drop any translations loaded before the .mo existed
        get_babel(app).instance.domain_instance.cache.clear()


# -- the catalogue -------------------------------------------------------------


def test_every_russian_message_is_translated_and_not_fuzzy() -> None:
    catalog = load(RU_PO, "ru")
    assert str(catalog.locale) == "ru"
    assert catalog.num_plurals == 3
    untranslated, fuzzy = [], []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if len(strings) != (catalog.num_plurals if message.pluralizable else 1) or not all(
            s.strip() for s in strings
        ):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert not untranslated, f"untranslated: {untranslated}"
    assert not fuzzy, f"fuzzy: {fuzzy}"
    assert not catalog.obsolete, f"obsolete entries left: {list(catalog.obsolete)}"


def test_russian_placeholders_match_the_source() -> None:
    problems = [
        (message.id, [str(e) for e in errors]) for message, errors in load(RU_PO, "ru").check()
    ]
    assert not problems


def test_template_is_up_to_date_with_the_sources(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    pybabel("extract", *EXTRACT_ARGS, "-o", str(fresh), ".")
    extracted = ids(load(fresh))
    committed = ids(load(TEMPLATE))
    assert extracted, "extraction found no messages"
    assert extracted - committed == set(), "new strings: run pybabel extract and pybabel update"
    assert committed - extracted == set(), "stale strings: run pybabel extract and pybabel update"
    # The macros live in templates/_macros, which Babel skips by default.
    assert "%(amount)s every month" in extracted


def test_russian_catalogue_matches_the_template() -> None:
    assert ids(load(RU_PO, "ru")) == ids(load(TEMPLATE)), "run pybabel update"


# -- choosing the language -------------------------------------------------------


def assert_russian(html: str) -> None:
    assert '<html lang="ru">' in html
    assert RU_HEADLINE in html
    for label in RU_ASK_LABELS:
        assert label in html, label


def assert_english(html: str) -> None:
    assert '<html lang="en">' in html
    assert "Independent journalism needs your support" in html
    for label in EN_ASK_LABELS:
        assert label in html, label
    assert "Разово" not in html


def test_ask_in_russian_by_query(client) -> None:
    page = client.get("/support?lang=ru")
    assert page.status_code == 200
    assert_russian(page.text)
    assert "Как часто?" in page.text
    assert "Поддержите независимую журналистику" in page.text  # <title>


def test_ask_in_english_by_default(client) -> None:
    """English is the source language: it renders from the msgids, with no catalogue."""
    page = client.get("/support")
    assert page.status_code == 200
    assert_english(page.text)


def test_ask_in_russian_by_accept_language(client) -> None:
    page = client.get("/support", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert page.status_code == 200
    assert_russian(page.text)


def test_query_choice_sticks_and_language_link_switches_back(client) -> None:
    assert_russian(client.get("/support?lang=ru").text)
    assert_russian(client.get("/support").text)  # remembered in the session

    switch = client.get("/language/en?next=/support")
    assert switch.status_code == 302
    assert switch.headers["Location"].endswith("/support")

    # The session choice wins over the browser's preference.
    assert_english(client.get("/support", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).text)


def test_language_link_switches_to_russian(client) -> None:
    switch = client.get("/language/ru?next=/support")
    assert switch.status_code == 302
    assert switch.headers["Location"].endswith("/support")
    assert_russian(client.get("/support", headers={"Accept-Language": "en"}).text)


def test_unknown_language_is_ignored(client) -> None:
    client.get("/language/xx")
    assert_english(client.get("/support?lang=xx").text)


def test_error_page_in_russian(client) -> None:
    page = client.get("/no-such-page?lang=ru")
    assert page.status_code == 404
    assert "Страница не найдена" in page.text


# -- email -------------------------------------------------------------------------


def receipt(locale: str) -> EmailMessage:
    """An outbox row shaped like the one payments.services._on_succeeded queues."""
    return EmailMessage(
        id=7,
        dedupe_key="receipt:donation:7",
        template="receipt",
        to_address="anna@example.org",
        to_name="Анна",
        locale=locale,
        context={
            "donation_id": 7,
            "amount": 2500,
            "fee_cover_amount": 100,
            "currency": "USD",
            "frequency": "once",
            "card_brand": "visa",
            "last4": "4242",
            "method": "card",
            "reference": "pi_test_i18n",
            "succeeded_at": datetime(2026, 3, 14, 12, 0, tzinfo=UTC).isoformat(),
        },
    )


@pytest.fixture
def request_ctx(app: Flask) -> Iterator[None]:
    with app.test_request_context():
        yield


@pytest.mark.usefixtures("request_ctx")
def test_receipt_email_in_russian() -> None:
    message = render_email(receipt("ru"))

    assert message["Subject"] == "Ваша квитанция: 26,00\xa0$ в поддержку нашей журналистики"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Здравствуйте, Анна!" in body
        assert "Спасибо за ваше пожертвование! Это ваша квитанция." in body
        assert "Сумма:" in body
        assert "26,00\xa0$" in body
        assert "Включая 1,00\xa0$ на покрытие комиссии за обработку платежа." in body
        assert "Способ оплаты:" in body
        assert "Номер платежа:" in body
        assert "pi_test_i18n" in body
        assert "Это разовое пожертвование: больше никаких списаний не будет." in body
        assert "С благодарностью," in body
        assert "Редакция" in body
        assert "Thank you" not in body
    assert '<html lang="ru">' in html


@pytest.mark.usefixtures("request_ctx")
def test_receipt_email_in_english_in_the_same_request() -> None:
    """force_locale is per message: a Russian email does not leak into the next."""
    render_email(receipt("ru"))
    message = render_email(receipt("en"))
    assert message["Subject"] == "Your receipt: $26.00 to support our journalism"
    text = message.get_body(("plain",)).get_content()
    assert "Thank you for your gift. This is your receipt." in text


def refund_email(locale: str, *, fully: bool) -> EmailMessage:
    """An outbox row shaped like the one payments.ledger._queue_refund_email queues."""
    return EmailMessage(
        id=8,
        dedupe_key="refund:re_test_i18n",
        template="refund",
        to_address="anna@example.org",
        to_name="Анна",
        locale=locale,
        context={
            "donation_id": 7,
            "amount": 1000 if fully else 400,
            "currency": "EUR",
            "charged": 1000,
            "refunded_total": 1000 if fully else 400,
            "fully_refunded": fully,
            "frequency": "once",
            "reference": "pi_test_refund",
            "paid_at": datetime(2026, 3, 14, 12, 0, tzinfo=UTC).isoformat(),
        },
    )


@pytest.mark.usefixtures("request_ctx")
@pytest.mark.parametrize(
    ("locale", "subject", "lines"),
    [
        (
            "en",
            "We have refunded €4.00 of your gift",
            ["Dear Анна,", "Refunded so far: €4.00 of €10.00.", "pi_test_refund"],
        ),
        (
            "ru",
            "Мы вернули 4,00\xa0€ из вашего пожертвования",
            [
                "Здравствуйте, Анна!",
                "Возвращено на данный момент: 4,00\xa0€ из 10,00\xa0€.",
                "pi_test_refund",
            ],
        ),
    ],
)
def test_refund_email_renders_in_each_language(locale: str, subject: str, lines: list[str]) -> None:
    message = render_email(refund_email(locale, fully=False))
    assert message["Subject"] == subject
    for part in ("plain", "html"):
        body = message.get_body((part,)).get_content()
        for line in lines:
            assert line in body, (part, line)
    full = render_email(refund_email(locale, fully=True)).get_body(("plain",)).get_content()
    assert ("The whole gift has now been refunded." in full) is (locale == "en")
    assert ("Всё пожертвование возвращено." in full) is (locale == "ru")


def test_choosing_english_after_a_lang_ru_link_shows_english(client) -> None:
    page = client.get("/support?lang=ru&currency=EUR")
    assert_russian(page.text)
    # The switch's return address keeps the rest of the URL but not lang=ru ...
    assert '/language/en?next=/support?currency%3DEUR"' in page.text
    assert "lang%3Dru" not in page.text
    # ... and even a link that still carries it returns without it: the choice wins.
    switch = client.get("/language/en?next=/support?lang%3Dru%26currency%3DEUR")
    assert switch.status_code == 302
    assert switch.headers["Location"] == "/support?currency=EUR"
    answer = client.get(switch.headers["Location"])
    assert_english(answer.text)
    assert answer.headers["Cache-Control"].startswith("private")  # their own page
