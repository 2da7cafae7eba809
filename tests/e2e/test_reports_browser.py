"""Reports in a real browser: a finance person filters the ledger and downloads it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

import openpyxl
import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from donations.db import commit, db, utcnow
from donations.staff.models import Role
from donations.staff.services import create_staff
from tests import factories
from tests.e2e.test_accessibility import AXE, check_page
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

EMAIL = "ledger@newsroom.org"
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def secret(app: Flask) -> str:
    with app.app_context():
        staff = create_staff(EMAIL, Role.FINANCE, PASSWORD)
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = utcnow()
        owner = factories.supporter("ada@example.org", '=HYPERLINK("http://evil.example","x")')
        now = utcnow()
        factories.donation(owner, 2500, fee=103, method="card", succeeded_at=now)
        factories.donation(
            owner, 1200, "EUR", fee=55, method="card", succeeded_at=now - timedelta(minutes=5)
        )
        secret = staff.totp_secret
        commit()
        db.session.remove()
    return secret


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp only so that axe-core can be injected for the accessibility check.
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True, bypass_csp=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
    finally:
        context.close()


def test_filter_the_ledger_and_download_it(
    page: Page, live_server: LiveServer, secret: str, tmp_path
) -> None:
    base = live_server.url
    page.goto(f"{base}/staff/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Six-digit code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("navigation", name="Back office").get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    page.get_by_role("link", name="Donations ledger").click()
    expect(page.get_by_role("heading", name="Donations ledger")).to_be_visible()
    expect(page.locator("#rows")).to_contain_text("All 2 rows")

    page.get_by_label("Currency (e.g. EUR)").fill("usd")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#rows")).to_contain_text("All 1 row")
    expect(page.locator("table.totals td[data-column=gross]")).to_have_text("25.00")
    expect(page.locator("table.totals td[data-column=net]")).to_have_text("23.97")
    check_page(page, AXE, "ledger report")
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(tmp_path / "ledger-report.png"), full_page=True)

    with page.expect_download() as csv_download:
        page.locator("#downloads").get_by_role("link", name="CSV").click()
    path = tmp_path / "ledger.csv"
    csv_download.value.save_as(path)
    assert csv_download.value.suggested_filename.startswith("ledger_")
    table = list(csv.reader(io.StringIO(path.read_text("utf-8-sig"), newline="")))
    assert len(table) == 2
    assert table[1][3] == "'" + '=HYPERLINK("http://evil.example","x")'
    assert table[1][4:11] == ["25.00", "0.00", "1.03", "0.00", "23.97", "", "USD"]

    with page.expect_download() as xlsx_download:
        page.locator("#downloads").get_by_role("link", name="XLSX").click()
    path = tmp_path / "ledger.xlsx"
    xlsx_download.value.save_as(path)
    sheet = openpyxl.load_workbook(path).worksheets[0]
    assert sheet.max_row == 2
    assert sheet.cell(2, 4).data_type == "s"
    assert sheet.cell(2, 5).value == 25

    # The same file, prepared in the background (inline here): its page, then the download.
    page.locator("#downloads").get_by_role("button", name="Prepare XLSX").click()
    expect(page.get_by_role("heading", name="Donations ledger as XLSX")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Ready: 1 row, ")
    check_page(page, AXE, "prepared export")
    page.screenshot(path=str(tmp_path / "prepared-export.png"), full_page=True)
    with page.expect_download() as prepared_download:
        page.get_by_role("link", name="Download XLSX").click()
    path = tmp_path / "prepared.xlsx"
    prepared_download.value.save_as(path)
    assert prepared_download.value.suggested_filename.startswith("ledger_")
    prepared = openpyxl.load_workbook(path).worksheets[0]
    assert [[c.value for c in row] for row in prepared.iter_rows()] == [
        [c.value for c in row] for row in sheet.iter_rows()
    ]
