"""Reconciliation: re-read Stripe for a period and repair the ledger to match.

A missed or failed webhook must never mean a missing donation. For each
object Stripe has for the period -- plans' invoices and their subscriptions,
payments, refunds, disputes, payouts --
the same functions the webhooks use bring the ledger in line, and what they
changed is reported as a difference. What they cannot change (a status the
ledger's rules forbid, an amount that disagrees, a payment nobody can place)
stays a difference that is reported as remaining.

Each object is repaired in its own savepoint and committed on its own, so
one bad object does not stop the run; a dry run makes the same repairs and
rolls everything back at the end, so it reports exactly what a real run
would change. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import select

from donations.db import Base, begin_writing, commit, db
from donations.money import Money
from donations.payments import ledger, recurring
from donations.payments.gateway import (
    GatewayError,
    InvoiceSnapshot,
    PaymentSnapshot,
    PayoutSnapshot,
)
from donations.payments.models import Dispute, Payout, PayoutStatus, Refund
from donations.payments.services import gateway, status_from_snapshot
from donations.supporters.models import (
    PLAN_TRANSITIONS,
    Donation,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Base)


# What is compared, in the order of the passes.
KINDS = ("plan", "invoice", "payment", "refund", "dispute", "payout")
# Plans that have not ended: their subscription is read from Stripe on every run,
# whatever the period, so a cancellation at Stripe is never missed.
OPEN_PLAN_STATUSES = frozenset(s for s in PlanStatus if PLAN_TRANSITIONS[s])


@dataclass(frozen=True)
class Difference:
    kind: str  # plan, invoice, payment, refund, dispute, payout
    stripe_id: str
    what: str
    repaired: bool


@dataclass
class ReconcileReport:
    start: datetime
    end: datetime
    dry_run: bool
    checked: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)

    @property
    def remaining(self) -> list[Difference]:
        """Differences still there after the run (every one, in a dry run)."""
        return [d for d in self.differences if not d.repaired or self.dry_run]

    def add(self, kind: str, stripe_id: str, what: str, repaired: bool) -> None:
        self.differences.append(Difference(kind, stripe_id, what, repaired))
        log.info("reconcile %s %s: %s%s", kind, stripe_id, what, "" if repaired else " (remains)")

    def lines(self) -> list[str]:
        mode = "dry run: nothing is changed" if self.dry_run else "repairing"
        start, end = f"{self.start:%Y-%m-%d %H:%M}", f"{self.end:%Y-%m-%d %H:%M}"
        out = [f"Stripe reconciliation {start} to {end} UTC ({mode})"]
        for kind in KINDS:
            found = [d for d in self.differences if d.kind == kind]
            out.append(f"  {kind}s: {self.checked[kind]} checked, {len(found)} differences")
        for d in self.differences:
            if self.dry_run:
                verdict = "would repair" if d.repaired else "cannot repair"
            else:
                verdict = "repaired" if d.repaired else "NOT REPAIRED"
            out.append(f"  - {d.kind} {d.stripe_id}: {d.what} [{verdict}]")
        total = len(self.differences)
        out.append(
            f"{sum(self.checked.values())} checked, {total} differences, "
            f"{total - len(self.remaining)} repaired, {len(self.remaining)} remaining"
        )
        return out


def reconcile(start: datetime, end: datetime, *, dry_run: bool = False) -> ReconcileReport:
    """Compare the ledger with Stripe for objects created in [start, end) and repair it."""
    report = ReconcileReport(start=start, end=end, dry_run=dry_run)
    # Stripe's timestamps are whole seconds: round the end up, not down.
    window = (math.floor(start.timestamp()), math.ceil(end.timestamp()))
    run = _Run(report, dry_run)
    if dry_run:
        begin_writing()
    try:
        # Plans and their invoices first, so the renewals they record are
        # matched by their payment below rather than reported as unknown.
        reconcile_invoices(window, run)
        _payments(window, run)
        _refunds(window, run)
        _disputes(window, run)
        _payouts(window, run)
    finally:
        if dry_run:
            db.session.rollback()
    return report


@dataclass
class _Run:
    report: ReconcileReport
    dry_run: bool

    def repair(
        self,
        kind: str,
        stripe_id: str,
        view: Callable[[], Hashable],
        action: Callable[[], object],
        describe: Callable[[Hashable, Hashable], str],
    ) -> bool:
        """Run ``action`` in a savepoint and report how ``view`` changed; False if it failed."""
        self.report.checked[kind] += 1
        begin_writing()
        before = view()
        try:
            with db.session.begin_nested():
                action()
        except (GatewayError, ledger.UnknownPayment, ValueError, RuntimeError) as exc:
            log.warning("reconcile %s %s failed: %s", kind, stripe_id, exc)
            self.report.add(kind, stripe_id, f"cannot be recorded: {exc}", repaired=False)
            return False
        after = view()
        if before != after:
            self.report.add(kind, stripe_id, describe(before, after), repaired=True)
        if not self.dry_run:
            commit()
        return True


def reconcile_invoices(window: tuple[int, int], run: _Run) -> None:
    """Plans' subscriptions, then the period's invoices: each renewal is one donation.

    The subscriptions are those the period's invoices belong to and those of
    every plan the ledger has not ended; each brings its plan's status, next
    renewal and cancellation in line. Then each invoice is recorded as the
    invoice webhooks record it (``recurring.record_invoice``): a renewal,
    paid or failed, missing from the ledger is added to its plan.
    """
    invoices = list(gateway().list_invoices(*window))
    wanted = list(dict.fromkeys(i.subscription_id for i in invoices if i.subscription_id))
    open_plans = db.session.scalars(
        select(RecurringPlan.stripe_subscription_id)
        .where(
            RecurringPlan.status.in_(sorted(OPEN_PLAN_STATUSES)),
            RecurringPlan.stripe_subscription_id.is_not(None),
        )
        .order_by(RecurringPlan.id)
    ).all()
    wanted += [i for i in open_plans if i is not None and i not in wanted]
    for subscription_id in wanted:
        _check_subscription(subscription_id, run)
    for invoice in invoices:
        _check_invoice(invoice, run)


# -- plans and their invoices ------------------------------------------------------


def _plan_view(plan_id: int) -> Hashable:
    plan = db.session.get(RecurringPlan, plan_id, populate_existing=True)
    if plan is None:
        return None
    return (
        ("status", str(plan.status)),
        ("next renewal", _when(plan.next_renewal_at)),
        ("canceled", _when(plan.canceled_at)),
    )


def _as_stored(model: type[M], **stripe_id: str) -> M | None:
    """The row with this Stripe id as the database has it now, not as the session last saw it.

    The views compare a row before and after its repair, so what the
    session holds in memory is read again (``populate_existing``).
    """
    return db.session.scalar(
        select(model).filter_by(**stripe_id).execution_options(populate_existing=True)
    )


def _when(value: datetime | None) -> str | None:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else None


def _customer_is_ours(customer_id: str | None) -> bool:
    return customer_id is not None and (
        db.session.scalar(select(Supporter.id).where(Supporter.stripe_customer_id == customer_id))
        is not None
    )


def _check_subscription(subscription_id: str, run: _Run) -> None:
    try:
        snapshot = gateway().retrieve_subscription(subscription_id)
    except GatewayError as exc:
        run.report.checked["plan"] += 1
        run.report.add("plan", subscription_id, f"unknown to Stripe: {exc}", repaired=False)
        return
    plan = recurring.find_plan(snapshot)
    if plan is None:
        if snapshot.metadata.get("plan_attempt") or _customer_is_ours(snapshot.customer_id):
            run.report.checked["plan"] += 1
            run.report.add(
                "plan", snapshot.id, "a supporter's subscription that matches no plan", False
            )
        else:
            run.report.checked["other subscription"] += 1
        return
    # The invoices are compared one by one below; the plan's own state here.
    run.repair(
        "plan",
        snapshot.id,
        partial(_plan_view, plan.id),
        partial(recurring.sync_subscription, replace(snapshot, latest_invoice=None)),
        _describe_fields,
    )


def _invoice_view(invoice_id: str) -> Hashable:
    donation = _as_stored(Donation, stripe_invoice_id=invoice_id)
    if donation is None:
        return None
    return (
        ("plan", donation.recurring_plan_id),
        ("payment", donation.stripe_payment_intent_id),
        ("currency", donation.currency),
        *_payment_fields(donation),
    )


def _describe_invoice(before: Hashable, after: Hashable) -> str:
    if before is None and isinstance(after, tuple):
        fields = dict(after)
        charged = Money(int(fields["amount"]), str(fields["currency"])).format()
        return (
            f"missing from the ledger: recorded from Stripe as a {fields['status']} "
            f"payment of {charged} for plan {fields['plan']}"
        )
    return _describe_fields(before, after)


def _check_invoice(invoice: InvoiceSnapshot, run: _Run) -> None:
    plan = (
        db.session.scalar(
            select(RecurringPlan).where(
                RecurringPlan.stripe_subscription_id == invoice.subscription_id
            )
        )
        if invoice.subscription_id
        else None
    )
    if plan is None:
        # Not a plan's (an invoice of its own, another system's subscription),
        # or a plan the subscription pass has already reported.
        run.report.checked["other invoice"] += 1
        return
    if invoice.amount_due.amount <= 0 or invoice.payment_intent_id is None:
        # Nothing to charge, or not attempted yet: no donation to record.
        run.report.checked["invoice"] += 1
        return
    run.repair(
        "invoice",
        invoice.id,
        partial(_invoice_view, invoice.id),
        partial(recurring.record_invoice, invoice, plan),
        _describe_invoice,
    )


# -- payments --------------------------------------------------------------------


def _payment_view(donation: Donation | None) -> Hashable:
    if donation is None:
        return None
    db.session.refresh(donation)
    return _payment_fields(donation)


def _payment_fields(donation: Donation) -> tuple[tuple[str, object], ...]:
    return (
        ("status", str(donation.status)),
        ("amount", donation.amount + donation.fee_cover_amount),
        ("charge", donation.stripe_charge_id),
        ("fee", donation.fee),
        ("net", donation.net),
        ("method", donation.method),
    )


def _find_donation(snapshot: PaymentSnapshot) -> Donation | None:
    donation = db.session.scalar(
        select(Donation).where(Donation.stripe_payment_intent_id == snapshot.id)
    )
    attempt = snapshot.metadata.get("donation_attempt")
    if donation is None and attempt:
        donation = db.session.scalar(select(Donation).where(Donation.attempt_key == attempt))
    return donation


def _describe_fields(before: Hashable, after: Hashable) -> str:
    """What changed between two views made of (name, value) pairs."""
    if before is None:
        return "missing from the ledger: recorded from Stripe"
    if after is None:
        return "gone from the ledger"
    assert isinstance(before, tuple)
    assert isinstance(after, tuple)
    changes = []
    for (key, old), (_, new) in zip(before, after, strict=True):
        if old == new:
            continue
        if isinstance(old, tuple) and isinstance(new, tuple):
            changes.append(f"{key} {len(old)} -> {len(new)}")
        else:
            changes.append(f"{key} {old!s} -> {new!s}")
    return ", ".join(changes)


def _payments(window: tuple[int, int], run: _Run) -> None:
    seen: set[str] = set()
    for snapshot in gateway().list_payments(*window):
        seen.add(snapshot.id)
        _check_payment(snapshot, run)
    # Donations of the period Stripe did not list (created at the edges of
    # the window, or a payment id Stripe no longer knows).
    start, end = (ledger.timestamp(t) for t in window)
    ids = db.session.scalars(
        select(Donation.stripe_payment_intent_id).where(
            Donation.created_at >= start,
            Donation.created_at < end,
            Donation.stripe_payment_intent_id.is_not(None),
        )
    ).all()
    for payment_id in ids:
        if payment_id is None or payment_id in seen:
            continue
        try:
            snapshot = gateway().retrieve_payment(payment_id)
        except GatewayError as exc:
            run.report.checked["payment"] += 1
            run.report.add("payment", payment_id, f"in the ledger, unknown to Stripe: {exc}", False)
            continue
        _check_payment(snapshot, run)


def _check_payment(snapshot: PaymentSnapshot, run: _Run) -> None:
    donation = _find_donation(snapshot)
    if donation is None and (
        not ledger.is_ours(snapshot)
        or (snapshot.metadata.get("donation_attempt") and not ledger.moved_money(snapshot))
    ):
        # Another system's payment on the same account, or an abandoned
        # attempt whose row never committed: nothing for the ledger.
        run.report.checked["other payment"] += 1
        return
    found: list[Donation | None] = [donation]

    def view() -> Hashable:
        return _payment_view(found[0] or _find_donation(snapshot))

    def action() -> None:
        found[0] = ledger.sync_payment(snapshot, grace=timedelta(0))

    if not run.repair("payment", snapshot.id, view, action, _describe_fields):
        return
    donation = found[0] or _find_donation(snapshot)
    if donation is None and not ledger.moved_money(snapshot):
        # A supporter's attempt outside our checkout and plans that took no money.
        return
    if donation is None:
        why = (
            "not in the ledger and cannot be recorded"
            if snapshot.metadata.get("donation_attempt")
            else "not in the ledger: a supporter's payment made outside our checkout "
            "that pays no plan's invoice"
        )
        run.report.add("payment", snapshot.id, why, False)
        return
    expected = status_from_snapshot(snapshot)
    if expected is not None and donation.status is not expected:
        run.report.add(
            "payment",
            snapshot.id,
            f"ledger says {donation.status}, Stripe says {snapshot.status}",
            repaired=False,
        )
    if donation.charge_total != snapshot.amount:
        run.report.add(
            "payment",
            snapshot.id,
            f"ledger amount {donation.charge_total.format()}, Stripe {snapshot.amount.format()}",
            repaired=False,
        )


# -- refunds -------------------------------------------------------------------------


def _charge_view(charge_id: str) -> Hashable:
    donation = _as_stored(Donation, stripe_charge_id=charge_id)
    if donation is None:
        return None
    refunds = db.session.scalars(
        select(Refund).where(
            Refund.donation_id == donation.id, Refund.stripe_refund_id.is_not(None)
        )
    ).all()
    return (
        ("refunded", donation.refunded_amount),
        ("fee", donation.fee),
        ("net", donation.net),
        ("refunds", tuple(sorted((r.stripe_refund_id, r.amount, str(r.status)) for r in refunds))),
    )


def _describe_charge(before: Hashable, after: Hashable) -> str:
    if before is None or after is None:
        return _describe_fields(before, after)
    assert isinstance(before, tuple)
    assert isinstance(after, tuple)
    parts = []
    for (key, b), (_, a) in zip(before, after, strict=True):
        if a == b:
            continue
        if key == "refunds":
            old = {r[0]: r for r in b}
            for r in a:
                if r[0] not in old:
                    parts.append(f"refund {r[0]} of {r[1]} ({r[2]}) was missing")
                elif old[r[0]] != r:
                    parts.append(f"refund {r[0]} {old[r[0]][1:]} -> {r[1:]}")
        else:
            parts.append(f"{key} {b!s} -> {a!s}")
    return ", ".join(parts)


def _refunds(window: tuple[int, int], run: _Run) -> None:
    charges: dict[str, str] = {}
    for refund in gateway().list_refunds(*window):
        if refund.charge_id and refund.charge_id not in charges:
            charges[refund.charge_id] = refund.id
    for charge_id, refund_id in charges.items():
        run.repair(
            "refund",
            refund_id,
            partial(_charge_view, charge_id),
            partial(ledger.sync_charge, charge_id),
            _describe_charge,
        )
        _stale_refunds(charge_id, run)


def _stale_refunds(charge_id: str, run: _Run) -> None:
    """Refund rows the ledger has for a charge that Stripe does not list."""
    donation = db.session.scalar(select(Donation).where(Donation.stripe_charge_id == charge_id))
    if donation is None:
        return
    try:
        listed = {r.id for r in gateway().retrieve_charge(charge_id).refunds}
    except GatewayError:
        return
    for row in db.session.scalars(select(Refund).where(Refund.donation_id == donation.id)):
        # A staff request Stripe refused has no Stripe id: nothing to compare.
        if row.stripe_refund_id is not None and row.stripe_refund_id not in listed:
            run.report.add(
                "refund", row.stripe_refund_id, "in the ledger, unknown to Stripe", False
            )


# -- disputes ----------------------------------------------------------------------------


def _dispute_view(dispute_id: str) -> Hashable:
    row = _as_stored(Dispute, stripe_dispute_id=dispute_id)
    if row is None:
        return None
    return (
        ("status", str(row.status)),
        ("amount", row.amount),
        ("fee", row.fee),
        ("net", row.net),
    )


def _disputes(window: tuple[int, int], run: _Run) -> None:
    ids = [d.id for d in gateway().list_disputes(*window)]
    # Disputes opened earlier may have been closed in the period.
    ids += [
        i
        for i in db.session.scalars(
            select(Dispute.stripe_dispute_id).where(Dispute.closed_at.is_(None))
        )
        if i not in ids
    ]
    for dispute_id in ids:
        run.repair(
            "dispute",
            dispute_id,
            partial(_dispute_view, dispute_id),
            partial(ledger.sync_dispute, dispute_id),
            _describe_fields,
        )


# -- payouts ---------------------------------------------------------------------------


def _payout_view(payout_id: str) -> Hashable:
    row = _as_stored(Payout, stripe_payout_id=payout_id)
    if row is None:
        return None
    donations = db.session.scalars(
        select(Donation.id).where(Donation.payout_id == row.id).order_by(Donation.id)
    ).all()
    refunds = db.session.scalars(
        select(Refund.id).where(Refund.payout_id == row.id).order_by(Refund.id)
    ).all()
    return (
        ("status", str(row.status)),
        ("amount", row.amount),
        ("donations paid out", tuple(donations)),
        ("refunds paid out", tuple(refunds)),
    )


def _payouts(window: tuple[int, int], run: _Run) -> None:
    listed: list[PayoutSnapshot] = list(gateway().list_payouts(*window))
    ids = [p.id for p in listed]
    ids += [
        i
        for i in db.session.scalars(
            select(Payout.stripe_payout_id).where(
                Payout.status.in_([PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT])
            )
        )
        if i not in ids
    ]
    for payout_id in ids:
        links: list[ledger.PayoutLinks] = []

        def action(p: str = payout_id, found: list[ledger.PayoutLinks] = links) -> None:
            found.append(ledger.sync_payout(p)[1])

        repaired = run.repair(
            "payout", payout_id, partial(_payout_view, payout_id), action, _describe_fields
        )
        unmatched = links[-1].unmatched if repaired and links else []
        if unmatched:
            run.report.add(
                "payout",
                payout_id,
                f"{len(unmatched)} paid-out charges or refunds match no ledger row: "
                + ", ".join(unmatched[:5]),
                repaired=False,
            )


# -- the period ----------------------------------------------------------------------


def period(since: datetime, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, the day after until) -- or up to now when until is not given."""
    end = until + timedelta(days=1) if until is not None else now + timedelta(seconds=1)
    return since, end
