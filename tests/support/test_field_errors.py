"""Errors are said at the field they concern, not only at the top of the form.

Each refused field carries aria-invalid and aria-describedby naming its own
message, which sits next to it; the summary at the top links to the field.
In English and Russian, on the ask (the amount, the frequency, the currency),
the details form and the reminder sign-up.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from flask import Flask
from sqlalchemy import func, select

from donations.db import db
from donations.reminders.models import Reminder
from donations.supporters.models import Donation
from tests.reminders.test_views import signup_form
from tests.support.test_checkout import details_form


class Elements(HTMLParser):
    """Every element with an id: its tag, attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.links: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.by_id[a["id"]] = {"tag": tag, **a, "text": ""}
            self._open.append(a["id"])
        elif tag not in ("input", "br", "meta", "link", "img"):
            self._open.append("")
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            if element:
                self.by_id[element]["text"] += data


def elements(html: str) -> Elements:
    found = Elements()
    found.feed(html)
    return found


def said_at(page: Elements, field_id: str, message: str, *, invalid: bool = True) -> None:
    """The field is marked invalid and described by its own message, which says ``message``."""
    field = page.by_id[field_id]
    described = field.get("aria-describedby", "").split()
    assert f"{field_id}-errors" in described, field
    if invalid:
        assert field.get("aria-invalid") == "true", field
    assert " ".join(page.by_id[f"{field_id}-errors"]["text"].split()) == message


def in_summary(page: Elements, summary: str, target: str, message: str) -> None:
    assert message in " ".join(page.by_id[summary]["text"].split())
    assert target in page.links
    assert target in page.by_id, f"the summary links to #{target}, which the page lacks"


def count(app: Flask, model: type) -> int:
    # In an app context of its own: the test client's requests would share (and
    # Flask-Babel cache its language in) one the test held open.
    with app.app_context():
        try:
            return int(db.session.scalar(select(func.count()).select_from(model)) or 0)
        finally:
            db.session.remove()


# -- the ask ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "amount", "message"),
    [
        ("en", "1.50", "The smallest gift is $2.00."),
        ("ru", "1,50", "Минимальная сумма пожертвования — 2,00 $."),
        ("en", "5,5", "Enter an amount such as 1,234.50."),
        ("ru", "abc", "Введите сумму, например 1 234,50."),
    ],
)
def test_a_refused_amount_is_said_at_the_amount(
    client, lang: str, amount: str, message: str
) -> None:
    answer = client.get(
        f"/support/checkout?frequency=monthly&currency=USD&custom_amount={amount}",
        headers={"Accept-Language": lang},
    )
    assert answer.status_code == 400
    page = elements(answer.text.replace("\u00a0", " ").replace("\u202f", " "))
    said_at(page, "custom_amount", message)
    in_summary(page, "ask-errors", "custom_amount", message)
    assert page.by_id["ask-errors"]["role"] == "alert"
    # The other choices are fine: nothing marks them.
    assert "aria-invalid" not in page.by_id["currency"]
    assert "frequency-errors" not in page.by_id


@pytest.mark.parametrize(
    ("lang", "query", "field", "target", "message"),
    [
        ("en", "frequency=weekly&currency=USD&amount=10", "frequency", "frequency-once",
         "Choose how often you would like to give."),
        ("ru", "frequency=weekly&currency=USD&amount=10", "frequency", "frequency-once",
         "Выберите, как часто вы хотите нас поддерживать."),
        ("en", "frequency=once&currency=XYZ&amount=10", "currency", "currency",
         "Choose one of the currencies offered."),
        ("ru", "frequency=once&currency=XYZ&amount=10", "currency", "currency",
         "Выберите одну из предложенных валют."),
    ],
)  # fmt: skip
def test_a_refused_frequency_or_currency_is_said_at_its_choice(
    client, lang: str, query: str, field: str, target: str, message: str
) -> None:
    answer = client.get(f"/support/checkout?{query}", headers={"Accept-Language": lang})
    assert answer.status_code == 400
    page = elements(answer.text)
    in_summary(page, "ask-errors", target, message)
    assert " ".join(page.by_id[f"{field}-errors"]["text"].split()) == message
    if field == "currency":
        said_at(page, "currency", message)
    else:
        # A group of radios is described by the message (aria-invalid is not for radios).
        group = next(
            e for e in page.by_id.values() if "frequency-errors" in e.get("aria-describedby", "")
        )
        assert group["tag"] == "fieldset"
    assert "aria-invalid" not in page.by_id["custom_amount"]


# -- the details form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "email_message", "name_message", "country_message"),
    [
        ("en", "Enter an email address like name@example.org.",
         "Field cannot be longer than 200 characters.", "Not a valid choice."),
        ("ru", "Введите адрес электронной почты в формате name@example.org.", None, None),
    ],
)  # fmt: skip
def test_details_errors_are_said_at_each_field(
    client,
    app,
    lang: str,
    email_message: str,
    name_message: str | None,
    country_message: str | None,
) -> None:
    form = details_form(client)
    answer = client.post(
        "/support/checkout",
        data={**form, "email": "not-an-address", "name": "x" * 201, "country": "ZZZ"},
        headers={"Accept-Language": lang},
    )
    assert answer.status_code == 400
    page = elements(answer.text)
    said_at(page, "email", email_message)
    in_summary(page, "details-errors", "email", email_message)
    for field, message in (("name", name_message), ("country", country_message)):
        field_errors = page.by_id[f"{field}-errors"]["text"]
        if message:
            said_at(page, field, message)
        assert field in page.links
        assert field_errors.strip()
    assert count(app, Donation) == 0


def test_a_missing_email_is_said_at_the_email(client) -> None:
    answer = client.post("/support/checkout", data={**details_form(client), "email": ""})
    page = elements(answer.text)
    said_at(page, "email", "Enter your email address so we can send your receipt.")
    # The fields without a fault are not marked.
    assert "aria-invalid" not in page.by_id["name"]
    assert "aria-invalid" not in page.by_id["country"]


# -- Remind me later -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "Enter an email address like name@example.org."),
        ("ru", "Введите адрес электронной почты в формате name@example.org."),
    ],
)
def test_reminder_errors_are_said_at_the_field(client, app, lang: str, message: str) -> None:
    data = signup_form(client, email="nobody", months="7")
    answer = client.post("/reminders/new", data=data, headers={"Accept-Language": lang})
    assert answer.status_code == 400
    page = elements(answer.text)
    said_at(page, "email", message)
    in_summary(page, "remind-errors", "email", message)
    # The choice of when: its group is described by its message; the summary goes to it.
    assert page.by_id["remind-when"]["aria-describedby"] == "months-errors"
    assert page.by_id["months-errors"]["text"].strip()
    in_summary(page, "remind-errors", "months-0", page.by_id["months-errors"]["text"].strip())
    assert count(app, Reminder) == 0
