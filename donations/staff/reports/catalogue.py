"""The catalogue of reports: what the screens and downloads list, in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from donations.payments.models import PayoutStatus
from donations.staff.reports.exporters import Column
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.funnel import FUNNEL_COLUMNS, funnel_rows, funnel_totals
from donations.staff.reports.ledger import (
    LEDGER_COLUMNS,
    ledger_copy_statement,
    ledger_rows,
    ledger_totals,
    ledger_xlsx_statement,
)
from donations.staff.reports.monthly import MONTHLY_COLUMNS, monthly_rows, monthly_totals
from donations.staff.reports.payouts import PAYOUT_COLUMNS, payout_rows, payout_totals
from donations.staff.reports.placements import (
    PLACEMENT_COLUMNS,
    placement_rows,
    placement_totals,
)
from donations.staff.reports.plans import PLAN_COLUMNS, plan_rows, plan_totals
from donations.staff.reports.retention import (
    RETENTION_COLUMNS,
    retention_rows,
    retention_totals,
)
from donations.staff.reports.sql import AnySelect, Row, Table
from donations.staff.reports.supporters import SUPPORTER_COLUMNS, supporter_rows, supporter_totals
from donations.supporters.models import DonationStatus, PlanStatus


@dataclass(frozen=True)
class Report:
    name: str  # in the URL: /staff/reports/<name>.csv
    title: str
    summary: str  # one sentence on the index and the screen
    columns: tuple[Column, ...]
    rows: Callable[[ReportFilters, ZoneInfo], Iterator[Row]]
    totals: Callable[[ReportFilters, ZoneInfo], Table]
    filters: tuple[str, ...] = ("from", "to")
    statuses: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # The same CSV cells as text, for PostgreSQL's COPY (the fast path).
    copy_statement: Callable[[ReportFilters, ZoneInfo], AnySelect] | None = None
    # The same XLSX rows as worksheet XML written by PostgreSQL (the fast path).
    xlsx_statement: Callable[[ReportFilters, ZoneInfo], AnySelect] | None = None
    # True when each row already sums many records (a month, an article), so
    # a viewer may see the rows; otherwise a row is one donation, plan,
    # payout or supporter, and a viewer sees the totals only.
    aggregated: bool = False


def _values(enum: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


REPORTS: dict[str, Report] = {
    report.name: report
    for report in (
        Report(
            "ledger",
            "Donations ledger",
            "One row per donation, with its fees, refunds, Stripe ids and payout.",
            LEDGER_COLUMNS,
            ledger_rows,
            ledger_totals,
            filters=(
                "from",
                "to",
                "status",
                "currency",
                "frequency",
                "method",
                "campaign",
                "payout",
            ),
            statuses=_values(DonationStatus),
            notes=(
                "A donation is dated by when it succeeded (or, if it has not, "
                "when it was created). Totals count succeeded donations only.",
                "amount = gift + fee cover (what Stripe charged); "
                "net = amount - fee - refunded. An empty fee is not known yet.",
            ),
            copy_statement=ledger_copy_statement,
            xlsx_statement=ledger_xlsx_statement,
        ),
        Report(
            "monthly",
            "Monthly summary",
            "Per month, currency and frequency: donations, gross, fees, refunds, "
            "net, new and cancelled plans.",
            MONTHLY_COLUMNS,
            monthly_rows,
            monthly_totals,
            filters=("from", "to", "currency", "frequency"),
            aggregated=True,
            notes=(
                "Donations count in the month they succeeded; plans in the month "
                "of their first payment (new) or of their cancellation.",
            ),
        ),
        Report(
            "plans",
            "Recurring plans",
            "One row per monthly or annual plan, with what it has paid so far.",
            PLAN_COLUMNS,
            plan_rows,
            plan_totals,
            filters=("from", "to", "status", "currency", "frequency"),
            statuses=_values(PlanStatus),
            notes=(
                "Plans are dated by their first payment (or creation, if none yet). "
                "MRR counts active plans: monthly amounts plus a twelfth of annual ones.",
            ),
        ),
        Report(
            "payouts",
            "Payouts reconciliation",
            "Each payout with the donations, fees and refunds it carried, and whether "
            "they add up to the amount paid out.",
            PAYOUT_COLUMNS,
            payout_rows,
            payout_totals,
            filters=("from", "to", "status", "currency"),
            statuses=_values(PayoutStatus),
            notes=(
                "Payouts are dated by Stripe's arrival date, a calendar day.",
                "expected = gross - fees - refunded; difference = amount - expected. "
                "Dispute movements and Stripe adjustments are not ledger rows, so a "
                "payout that carried them shows a difference. Manual, failed and "
                "cancelled payouts have no transactions to check (n/a).",
            ),
        ),
        Report(
            "reminders",
            "Reminders funnel",
            "Remind-me-later sign-ups per month: sent, converted, unsubscribed.",
            FUNNEL_COLUMNS,
            funnel_rows,
            funnel_totals,
            aggregated=True,
            notes=(
                "Converted: a gift succeeded or a plan started through the reminder's "
                "link. Clicks on the link are not recorded yet.",
            ),
        ),
        Report(
            "placements",
            "The ask in articles",
            "Per article, campaign and variant: times shown, reminder sign-ups, gifts, "
            "conversion rate and revenue.",
            PLACEMENT_COLUMNS,
            placement_rows,
            placement_totals,
            filters=("from", "to", "campaign"),
            aggregated=True,
            notes=(
                "Shown and continued: the embed's anonymous daily counters. Gifts: succeeded "
                "one-off gifts and each plan's first payment (renewals are not new gifts), "
                "dated like the ledger; revenue is gift plus fee cover, net of refunds.",
                "A placement with gifts in several currencies has a row per currency; its "
                "shown, gifts and rate repeat on each.",
            ),
        ),
        Report(
            "retention",
            "Retention",
            "Cancellations supporters started in Manage my support, per month and reason: "
            "how many were cancelled, and how many the offers saved.",
            RETENTION_COLUMNS,
            retention_rows,
            retention_totals,
            aggregated=True,
            notes=(
                "Dated by when the supporter gave the reason. Saved: an offer that keeps the "
                "plan was taken (a pause, a lower amount, annual instead of monthly). "
                "A reminder instead still cancels the plan. Left "
                "undecided: the reason was given, then neither an offer nor the cancellation "
                "was chosen.",
            ),
        ),
        Report(
            "supporters",
            "Supporters",
            "Supporters with their newsletter consent, gifts and active plans.",
            SUPPORTER_COLUMNS,
            supporter_rows,
            supporter_totals,
            filters=("from", "to", "consent"),
            notes=(
                "Dated by when the supporter was first recorded. Erased supporters are left out.",
            ),
        ),
    )
}
