"""Annual giving statements: the ledger's totals, the PDF, the once-only send job."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask_babel import refresh
from pypdf import PdfReader
from sqlalchemy import func, select

from donations.db import commit, db
from donations.mail.models import EmailMessage
from donations.mail.sender import render_email
from donations.manage import statements
from donations.manage.models import AnnualStatement
from donations.money import Money
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import LEDGER_COLUMNS, ledger_rows
from donations.supporters.models import Donation, DonationStatus, Supporter
from tests.harness import change_settings
from tests.manage.flows import links_in, other_browser, text_of
from tests.payments.stripe_flows import (
    charge_of,
    deliver,
    give,
    refund,
    stale,
    start_gift,
)

LAST_YEAR = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
TAX_TEXT = "No goods or services were provided in exchange for these gifts."


def newsroom(monkeypatch, app) -> None:
    settings = app.config["SETTINGS"]
    change_settings(
        monkeypatch,
        app,
        newsroom=replace(settings.newsroom, name="The Daily Lantern", address="1 Lamp Street"),
        statement_tax_text=TAX_TEXT,
    )


def backdate(donation: Donation, moment: datetime = LAST_YEAR) -> None:
    """A gift of last year (the ledger dates a gift by when it succeeded)."""
    row = db.session.get(Donation, donation.id)
    assert row is not None
    row.created_at = moment
    if row.succeeded_at is not None:
        row.succeeded_at = moment
    commit()


def failed_gift(client, simulator, email: str) -> Donation:
    gift = start_gift(client, amount="40", email=email)
    assert simulator.confirm(gift.client_secret, card="4000000000000002").status_code == 402
    client.get(gift.pay_url)
    donation = gift.donation()
    assert donation.status is DonationStatus.FAILED
    return donation


def ledger_report_for(email: str, first: date, last: date) -> dict[str, Decimal]:
    """The ledger report's rows of one supporter in those days, summed as finance would."""
    columns = [c.key for c in LEDGER_COLUMNS]
    rows = [
        dict(zip(columns, row, strict=True))
        for row in ledger_rows(ReportFilters(start=first, end=last), ZoneInfo("UTC"))
    ]
    mine = [r for r in rows if r["supporter_email"] == email and r["status"] == "succeeded"]
    return {
        "count": Decimal(len(mine)),
        "gross": sum((r["amount"] for r in mine), Decimal(0)),
        "refunds": sum((r["refunded"] for r in mine), Decimal(0)),
    }


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(page.extract_text() for page in reader.pages)


def ledger_year(client, simulator) -> tuple[Supporter, list[Donation]]:
    """Last year: two paid gifts (one partly refunded) and a declined one; this year: another."""
    kept = give(client, simulator, amount="10", email="giver@example.org")
    refunded = give(client, simulator, amount="25", email="giver@example.org")
    refund(simulator, refunded, 500)
    charge = charge_of(simulator, refunded)
    assert deliver(client, "charge.refunded", stale(charge, "charge")) == 200
    declined = failed_gift(client, simulator, "giver@example.org")
    this_year = give(client, simulator, amount="3", email="giver@example.org")
    gifts = [kept.donation(), refunded.donation(), declined]
    for donation in gifts:
        backdate(donation)
    assert gifts[1].refunded_amount == 500
    supporter = this_year.donation().supporter
    return supporter, gifts


def test_statement_totals_are_the_ledger_reports_and_the_pdf_says_so(
    app, client, ctx, simulator, mailbox, monkeypatch
) -> None:
    newsroom(monkeypatch, app)
    supporter, (kept, refunded, declined) = ledger_year(client, simulator)

    found = statements.statement(supporter, 2025)
    assert found is not None
    (usd,) = found.totals
    assert (usd.currency, usd.count, usd.gross, usd.refunds, usd.given) == (
        "USD",
        2,
        3500,
        500,
        3000,
    )
    report = ledger_report_for("giver@example.org", date(2025, 1, 1), date(2025, 12, 31))
    assert report == {
        "count": Decimal(usd.count),
        "gross": Decimal(usd.gross).scaleb(-2),
        "refunds": Decimal(usd.refunds).scaleb(-2),
    }
    assert [g.id for g in found.gifts] == [kept.id, refunded.id]  # not the declined one
    assert statements.statement_years(supporter) == [2026, 2025]

    # Signed in from the receipt's link, the supporter downloads it.
    mailbox.wait_for(1)
    (receipt,) = [m for m in mailbox.messages if "$3.00" in str(m["Subject"])]
    other_browser(client).get(links_in(receipt, "/manage/e/")[0])
    page = client.get("/manage/account")
    assert "Statement 2025" in page.text
    assert "Statement 2026" in page.text
    pdf = client.get("/manage/statements/2025.pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert 'filename="statement-2025.pdf"' in pdf.headers["Content-Disposition"]
    text = pdf_text(pdf.data)
    for expected in ("Giving statement 2025", "The Daily Lantern", "1 Lamp Street"):
        assert expected in text, text
    # The year's totals as the ledger holds them: given, refunded, kept.
    db.session.expire_all()
    paid = [db.session.get(Donation, gift.id) for gift in (kept, refunded)]
    gross = sum(gift.amount for gift in paid if gift is not None)
    back = sum(gift.refunded_amount for gift in paid if gift is not None)
    for total in (gross, back, gross - back):
        assert Money(total, "USD").format() in text, (total, text)
    assert TAX_TEXT in " ".join(text.split())
    assert kept.stripe_payment_intent_id in text
    assert declined.stripe_payment_intent_id not in text
    assert "$40.00" not in text

    refresh()
    russian = pdf_text(client.get("/manage/statements/2025.pdf?lang=ru").data)
    assert "Справка о пожертвованиях за 2025" in russian
    assert "Всего пожертвовано" in russian

    assert client.get("/manage/statements/2024.pdf").status_code == 404
    assert client.get("/manage/statements/99999999.pdf").status_code == 404


def statement_emails() -> list[EmailMessage]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(EmailMessage).where(EmailMessage.template == "statement"))
    )


def test_the_send_job_sends_each_statement_once_and_resumes(
    app, client, ctx, simulator, mailbox, monkeypatch
) -> None:
    newsroom(monkeypatch, app)
    giver, _ = ledger_year(client, simulator)
    other = give(client, simulator, amount="7", email="reader.ru@example.org").donation()
    backdate(other)
    russian = db.session.get(Supporter, other.supporter_id)
    assert russian is not None
    russian.locale = "ru"
    commit()
    runner = app.test_cli_runner()

    # A job stopped after its first supporter ...
    assert statements.send_statement(russian, 2025)
    commit()
    mailbox.messages.clear()
    # ... carries on with the others; run again, it sends nothing more.
    done = runner.invoke(args=["statements", "send", "--year", "2025"])
    assert done.exit_code == 0, done.output
    assert "1 supporters without one yet" in done.output
    again = runner.invoke(args=["statements", "send", "--year", "2025"])
    assert again.exit_code == 0, again.output
    assert "0 supporters" in again.output

    emails = statement_emails()
    assert sorted(e.to_address for e in emails) == ["giver@example.org", "reader.ru@example.org"]
    count = db.session.scalar(select(func.count()).select_from(AnnualStatement))
    assert count == 2
    (sent,) = mailbox.wait_for(1)
    assert "giving statement 2025" in str(sent["Subject"]).lower()
    text = text_of(sent)
    assert "$30.00" in text
    assert "The Daily Lantern" in text
    assert TAX_TEXT in text
    assert links_in(sent, "/manage/e/")
    (ru,) = [e for e in emails if e.locale == "ru"]
    assert ru.context["totals"][0]["given"] == 700
    rendered = render_email(ru)  # the Russian supporter's, as it went out
    assert str(rendered["Subject"]) == "Ваша справка о пожертвованиях за 2025"
    body = str(rendered.get_body(preferencelist=("plain",)).get_content())
    assert "Всего пожертвовано" in body
    assert "7,00" in body
    assert giver.id in {e.supporter_id for e in emails}

    # A fiscal year still running is refused: a statement must not miss a gift.
    early = runner.invoke(args=["statements", "send", "--year", "2026"])
    assert early.exit_code != 0
    assert "once it is over" in early.output
    assert len(statement_emails()) == 2


def test_fiscal_year_from_april(app, ctx, monkeypatch) -> None:
    change_settings(monkeypatch, app, fiscal_year_start="04-01")
    assert statements.fiscal_year_days(2025) == (date(2025, 4, 1), date(2026, 3, 31))
    assert statements.current_fiscal_year(datetime(2026, 3, 31, 23, tzinfo=UTC)) == 2025
    assert statements.current_fiscal_year(datetime(2026, 4, 1, 0, tzinfo=UTC)) == 2026
    assert statements.year_ended(2025, datetime(2026, 4, 1, tzinfo=UTC))
    assert not statements.year_ended(2025, datetime(2026, 3, 31, 12, tzinfo=UTC))
