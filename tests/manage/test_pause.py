"""Skip, pause, resume and cancel from /manage, through the simulator: the page says what
Stripe confirmed, the paused periods charge nothing, and every attempt to cancel is
recorded for the retention report."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from flask import Flask
from flask_babel import refresh
from sqlalchemy import func, select

from donations.db import db
from donations.reminders.models import Reminder, ReminderStatus
from donations.staff.models import AuditEntry, Role
from donations.supporters.models import PlanStatus, RecurringPlan
from donations.supporters.retention import AttemptStatus, CancellationAttempt
from tests.harness import Simulator
from tests.manage.flows import csrf_token, other_browser, sign_in
from tests.manage.test_account import card, squash
from tests.payments.stripe_flows import deliver, renewals, stale, stripe_api, subscribe


def _plan(plan_id: int) -> RecurringPlan:
    db.session.expire_all()
    plan = db.session.get(RecurringPlan, plan_id)
    assert plan is not None
    return plan


def _at_stripe(simulator: Simulator, plan: RecurringPlan) -> dict:
    return stripe_api(simulator, "GET", f"/v1/subscriptions/{plan.stripe_subscription_id}")


def _invoices(simulator: Simulator, plan: RecurringPlan) -> list[tuple[str, int]]:
    found = stripe_api(
        simulator, "GET", "/v1/invoices", subscription=plan.stripe_subscription_id, limit=20
    )["data"]
    return sorted((i["status"], i["amount_paid"]) for i in found)


def _renew(simulator: Simulator, plan: RecurringPlan, at: datetime | None = None) -> dict:
    data = {"at": int(at.timestamp())} if at is not None else {}
    answer = requests.post(
        f"{simulator.url}/_simulator/subscriptions/{plan.stripe_subscription_id}/renew",
        data=data,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _date_text(client, moment: datetime) -> str:
    with client.application.test_request_context():
        return str(client.application.jinja_env.filters["date_text"](moment))


def _back_to_plans(answer) -> None:
    """A plan action answered by the account page's list of plans."""
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/manage/account#plans"


def _signed_in_with_plan(client, simulator, mailbox, email: str, amount: str = "10"):
    plan = subscribe(client, simulator, amount=amount, email=email)
    mailbox.wait_for(2)  # the welcome and the receipt, before the sign-in link
    page = sign_in(other_browser(client), mailbox, email)
    return plan, csrf_token(page)


def _sync_from_event(client, plan: RecurringPlan, kind: str = "updated") -> None:
    # localstripe never sends customer.subscription.updated: the injector does.
    obj = stale(str(plan.stripe_subscription_id), "subscription")
    assert deliver(client, f"customer.subscription.{kind}", obj) == 200


def _cancel(client, plan_id: int, token: str, reason: str, timing: str):
    return client.post(
        f"/manage/plans/{plan_id}/cancel",
        data={"csrf_token": token, "reason": reason, "timing": timing},
    )


def _attempt_id(answer) -> int:
    assert answer.status_code == 303, answer.text
    match = re.search(r"/cancel/(\d+)$", answer.headers["Location"])
    assert match, answer.headers["Location"]
    return int(match.group(1))


# -- skip and pause ---------------------------------------------------------------------


def test_skip_the_next_payment_voids_that_invoice_only(
    client, ctx, simulator, mailbox, signed_in
) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "skip@example.org")
    next_renewal = plan.next_renewal_at
    assert next_renewal is not None
    page = client.get(f"/manage/plans/{plan.id}/pause")
    assert page.status_code == 200
    assert f"Skip the next payment ({_date_text(client, next_renewal)})" in squash(page.text)

    done = client.post(
        f"/manage/plans/{plan.id}/pause", data={"csrf_token": token, "months": "skip"}
    )
    _back_to_plans(done)
    pause = _at_stripe(simulator, plan)["pause_collection"]
    assert pause["behavior"] == "void"
    assert pause["resumes_at"] == int((next_renewal + timedelta(days=1)).timestamp())
    plan = _plan(plan.id)
    assert plan.status is PlanStatus.ACTIVE  # a pause is not a status
    assert plan.paused_until == datetime.fromtimestamp(pause["resumes_at"], UTC)
    account = client.get("/manage/account").text
    until = _date_text(client, plan.paused_until)
    assert f"Paused until {until}. Nothing will be charged until then." in squash(account)
    shown = card(account, f"plan-{plan.id}")
    assert f"Paused until {until}" in shown
    assert "Next payment" not in shown
    assert "Resume now" in shown
    # Finance sees it on the supporter's page, the step on their timeline.
    from tests.staff.conftest import forget_cached_csrf

    forget_cached_csrf()
    staff, _ = signed_in(Role.FINANCE)
    record = squash(staff.get(f"/staff/supporters/{plan.supporter_id}").text)
    assert "paused until" in record
    assert "manage.plan_skipped by supporter" in record

    # The period ends: Stripe voids that invoice, nothing is charged or recorded.
    skipped = _renew(simulator, plan)
    assert (skipped["status"], skipped["amount_paid"]) == ("void", 0)
    _sync_from_event(client, plan)
    assert len(renewals(plan)) == 1
    # The next one, after the pause: charged as usual, one period's amount.
    billed = _renew(simulator, plan, at=plan.paused_until + timedelta(days=30))
    assert (billed["status"], billed["amount_paid"]) == ("paid", 1000)
    _sync_from_event(client, plan)
    assert [d.amount for d in renewals(plan)] == [1000, 1000]
    assert _invoices(simulator, plan) == [("paid", 1000), ("paid", 1000), ("void", 0)]
    assert _plan(plan.id).paused_until is None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "manage.plan_skipped"))
    assert entry is not None
    assert (entry.target, entry.details["source"]) == (f"plan:{plan.id}", "sign_in_link")


def test_pause_then_resume_charges_no_catch_up(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "pause@example.org", "12")
    before = datetime.now(UTC)
    done = client.post(f"/manage/plans/{plan.id}/pause", data={"csrf_token": token, "months": "2"})
    _back_to_plans(done)
    plan = _plan(plan.id)
    assert plan.paused_until is not None
    assert 58 <= (plan.paused_until - before).days <= 62
    notice = squash(client.get("/manage/account").text)
    assert f"Paused until {_date_text(client, plan.paused_until)}" in notice

    # A renewal falls in the pause: voided at Stripe, no donation, no charge.
    assert _renew(simulator, plan)["status"] == "void"
    _sync_from_event(client, plan)
    assert len(renewals(plan)) == 1

    resumed = client.post(f"/manage/plans/{plan.id}/resume", data={"csrf_token": token})
    _back_to_plans(resumed)
    assert _at_stripe(simulator, plan)["pause_collection"] is None
    plan = _plan(plan.id)
    assert (plan.paused_until, plan.pause_behavior, plan.is_paused) == (None, None, False)
    account = client.get("/manage/account").text
    assert "Your support continues as before." in squash(account)
    shown = card(account, f"plan-{plan.id}")
    assert "Paused" not in shown
    assert "Next payment" in shown

    # The next renewal is one period's amount: nothing owed for the paused one.
    assert _renew(simulator, plan)["amount_paid"] == 1200
    _sync_from_event(client, plan)
    assert [d.amount for d in renewals(plan)] == [1200, 1200]
    assert _invoices(simulator, plan) == [("paid", 1200), ("paid", 1200), ("void", 0)]
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.target == f"plan:{plan.id}")
    ).all()
    assert "manage.plan_paused" in actions
    assert "manage.plan_resumed" in actions


# -- cancelling ---------------------------------------------------------------------------


def test_cancel_at_period_end_declining_the_offers(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "end@example.org")
    page = client.get(f"/manage/plans/{plan.id}/cancel")
    assert page.status_code == 200
    assert "I can no longer afford it" in page.text
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "too_expensive", "period_end"))
    offers = client.get(f"/manage/plans/{plan.id}/cancel/{attempt_id}")
    assert offers.status_code == 200
    for offer in ("pause", "lower-amount", "annual", "reminder"):
        assert f'id="offer-{offer}"' in offers.text
    # Nothing has changed at Stripe while the offers are on the screen.
    assert _at_stripe(simulator, plan)["cancel_at_period_end"] is False

    declined = client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "cancel"},
    )
    _back_to_plans(declined)
    at_stripe = _at_stripe(simulator, plan)
    assert (at_stripe["cancel_at_period_end"], at_stripe["status"]) == (True, "active")
    plan = _plan(plan.id)
    assert plan.cancel_at == datetime.fromtimestamp(at_stripe["cancel_at"], UTC)
    assert plan.status is PlanStatus.ACTIVE
    account = client.get("/manage/account").text
    ends = _date_text(client, plan.cancel_at)
    assert f"Your support ends on {ends}. No further payments will be taken." in squash(account)
    shown = card(account, f"plan-{plan.id}")
    assert f"Cancels on {_date_text(client, plan.cancel_at)}" in shown
    assert "Cancelled: no further payments" not in shown
    assert "Keep my support" in shown
    attempt = db.session.get(CancellationAttempt, attempt_id)
    assert attempt is not None
    assert (attempt.status, attempt.offer_taken, attempt.reason, attempt.offers_shown) == (
        AttemptStatus.CANCELLED,
        None,
        "too_expensive",
        "pause,lower_amount,annual,reminder",
    )
    # The offers were made once: the attempt's page is not shown again, nor decided twice.
    again = client.get(f"/manage/plans/{plan.id}/cancel/{attempt_id}")
    _back_to_plans(again)
    assert f"Your support ends on {ends}." in squash(client.get("/manage/account").text)
    twice = client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "pause", "months": "1"},
    )
    _back_to_plans(twice)
    assert "You have already decided about this cancellation." in squash(
        client.get("/manage/account").text
    )
    assert _at_stripe(simulator, plan)["pause_collection"] is None

    # The period ends: Stripe cancels instead of renewing, and says so.
    ended = _renew(simulator, plan)
    assert ended["status"] == "canceled"
    _sync_from_event(client, plan, "deleted")
    plan = _plan(plan.id)
    assert plan.status is PlanStatus.CANCELED
    assert len(renewals(plan)) == 1
    shown = card(client.get("/manage/account").text, f"plan-{plan.id}")
    assert "Cancelled: no further payments" in shown
    assert "Cancels on" not in shown
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "manage.plan_cancelled")
    )
    assert entry is not None
    assert entry.details["offers_declined"] == "pause,lower_amount,annual,reminder"
    assert entry.details["source"] == "sign_in_link"


def test_cancel_at_period_end_can_be_called_off(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "keep@example.org")
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "not_reading", "period_end"))
    client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "cancel"},
    )
    assert _plan(plan.id).ends_at_period_end
    kept = client.post(f"/manage/plans/{plan.id}/keep", data={"csrf_token": token})
    _back_to_plans(kept)
    assert "Your support continues as before." in squash(client.get("/manage/account").text)
    assert _at_stripe(simulator, plan)["cancel_at_period_end"] is False
    plan = _plan(plan.id)
    assert (plan.cancel_at_period_end, plan.cancel_at, plan.cancellation_reason) == (
        False,
        None,
        None,
    )
    assert _renew(simulator, plan)["status"] == "paid"


def test_cancel_now_taking_the_reminder_instead(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "now@example.org")
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "other_causes", "now"))
    offers = client.get(f"/manage/plans/{plan.id}/cancel/{attempt_id}").text
    assert "No thanks, cancel now" in offers
    taken = client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "reminder"},
    )
    _back_to_plans(taken)
    assert _at_stripe(simulator, plan)["status"] == "canceled"
    plan = _plan(plan.id)
    assert plan.status is PlanStatus.CANCELED
    assert plan.cancellation_reason == "supporter: other_causes"
    page = client.get("/manage/account").text
    assert "Cancelled: no further payments" in card(page, f"plan-{plan.id}")
    assert "We will remind you in 3 months." in squash(page)
    reminder = db.session.scalar(select(Reminder).where(Reminder.email_key == "now@example.org"))
    assert reminder is not None
    assert reminder.status is ReminderStatus.PENDING
    assert 88 <= (reminder.due_at - datetime.now(UTC)).days <= 93
    attempt = db.session.get(CancellationAttempt, attempt_id)
    assert attempt is not None
    assert (attempt.status, attempt.offer_taken) == (AttemptStatus.CANCELLED, "reminder")
    # Stripe's own notice afterwards changes nothing.
    _sync_from_event(client, plan, "deleted")
    assert _plan(plan.id).cancellation_reason == "supporter: other_causes"


def test_the_pause_offer_saves_the_plan(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "saved@example.org")
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "temporary", "period_end"))
    saved = client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "pause", "months": "3"},
    )
    _back_to_plans(saved)
    at_stripe = _at_stripe(simulator, plan)
    assert at_stripe["cancel_at_period_end"] is False
    assert at_stripe["pause_collection"]["behavior"] == "void"
    plan = _plan(plan.id)
    assert plan.is_paused
    assert not plan.ends_at_period_end
    attempt = db.session.get(CancellationAttempt, attempt_id)
    assert attempt is not None
    assert (attempt.status, attempt.offer_taken) == (AttemptStatus.SAVED, "pause")
    assert "Thank you for staying with us." in squash(client.get("/manage/account").text)


def test_a_lower_amount_saves_the_plan(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "lower@example.org", "20")
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "too_expensive", "period_end"))
    saved = client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "lower_amount", "amount": "7"},
    )
    _back_to_plans(saved)
    at_stripe = _at_stripe(simulator, plan)
    (item,) = at_stripe["items"]["data"]
    assert (item["price"]["unit_amount"], item["price"]["recurring"]["interval"]) == (700, "month")
    assert at_stripe["cancel_at_period_end"] is False
    plan = _plan(plan.id)
    assert (plan.amount, plan.status, plan.ends_at_period_end) == (700, PlanStatus.ACTIVE, False)
    assert "Thank you for staying with us." in squash(client.get("/manage/account").text)
    attempt = db.session.get(CancellationAttempt, attempt_id)
    assert attempt is not None
    assert (attempt.status, attempt.offer_taken) == (AttemptStatus.SAVED, "lower_amount")
    assert _renew(simulator, plan)["amount_paid"] == 700


def test_switching_to_annual_saves_the_plan(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "annual@example.org", "5")
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "other", "now"))
    offers = client.get(f"/manage/plans/{plan.id}/cancel/{attempt_id}").text
    assert 'value="60.00"' in offers  # twelve months' gift, suggested
    saved = client.post(
        f"/manage/plans/{plan.id}/cancel/{attempt_id}",
        data={"csrf_token": token, "choice": "annual", "amount": "50"},
    )
    _back_to_plans(saved)
    at_stripe = _at_stripe(simulator, plan)
    (item,) = at_stripe["items"]["data"]
    assert (item["price"]["unit_amount"], item["price"]["recurring"]["interval"]) == (5000, "year")
    assert at_stripe["status"] == "active"
    plan = _plan(plan.id)
    assert (plan.amount, str(plan.frequency), plan.status) == (5000, "annual", PlanStatus.ACTIVE)
    attempt = db.session.get(CancellationAttempt, attempt_id)
    assert attempt is not None
    assert (attempt.status, attempt.offer_taken) == (AttemptStatus.SAVED, "annual")


def test_with_no_offers_enabled_the_reason_cancels_at_once(
    app: Flask, client, ctx, simulator, mailbox
) -> None:
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = type(settings)(**{**vars(settings), "cancel_offers": ()})
    try:
        plan, token = _signed_in_with_plan(client, simulator, mailbox, "nooffer@example.org")
        answer = _cancel(client, plan.id, token, "other", "period_end")
        assert answer.status_code == 303
        assert answer.headers["Location"].endswith("/manage/account#plans")
    finally:
        app.config["SETTINGS"] = settings
    assert _at_stripe(simulator, plan)["cancel_at_period_end"] is True
    attempt = db.session.scalar(select(CancellationAttempt))
    assert attempt is not None
    assert (attempt.status, attempt.offers_shown, attempt.offer_taken) == (
        AttemptStatus.CANCELLED,
        "",
        None,
    )


# -- the retention report -----------------------------------------------------------------


def test_the_retention_report_counts_the_recorded_rows(
    client, ctx, simulator, mailbox, signed_in
) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "report@example.org")
    first = _attempt_id(_cancel(client, plan.id, token, "too_expensive", "period_end"))
    client.post(
        f"/manage/plans/{plan.id}/cancel/{first}",
        data={"csrf_token": token, "choice": "pause", "months": "1"},
    )
    _attempt_id(_cancel(client, plan.id, token, "too_expensive", "now"))  # left undecided
    third = _attempt_id(_cancel(client, plan.id, token, "not_reading", "now"))
    client.post(
        f"/manage/plans/{plan.id}/cancel/{third}", data={"csrf_token": token, "choice": "cancel"}
    )
    assert _plan(plan.id).status is PlanStatus.CANCELED

    from tests.staff.conftest import forget_cached_csrf

    forget_cached_csrf()
    staff, _ = signed_in(Role.FINANCE)
    today = datetime.now(UTC).date().isoformat()
    download = staff.get(f"/staff/reports/retention.csv?from={today}&to={today}")
    assert download.status_code == 200
    table = list(csv.DictReader(io.StringIO(download.data.decode("utf-8-sig"))))
    got = {
        r["reason"]: (int(r["attempts"]), int(r["cancelled"]), int(r["saved"]),
                      int(r["saved_by_pause"]), int(r["undecided"]))
        for r in table
    }  # fmt: skip
    expected: dict[str, tuple[int, int, int, int, int]] = {}
    for reason in ("too_expensive", "not_reading"):
        rows = db.session.scalars(
            select(CancellationAttempt).where(CancellationAttempt.reason == reason)
        ).all()
        expected[reason] = (
            len(rows),
            sum(r.status is AttemptStatus.CANCELLED for r in rows),
            sum(r.status is AttemptStatus.SAVED for r in rows),
            sum(r.offer_taken == "pause" for r in rows),
            sum(r.status is AttemptStatus.OFFERED for r in rows),
        )
    assert got == expected == {"too_expensive": (2, 0, 1, 1, 1), "not_reading": (1, 1, 0, 0, 0)}
    screen = staff.get(f"/staff/reports/retention?from={today}&to={today}")
    assert screen.status_code == 200
    assert "Saved by a pause" in screen.text
    viewer, _ = signed_in(Role.VIEWER)
    assert viewer.get("/staff/reports/retention.csv").status_code == 403


# -- whose plan, and bad input ------------------------------------------------------------


def test_another_supporters_plan_is_not_found(app: Flask, client, ctx, simulator, mailbox) -> None:
    theirs = subscribe(client, simulator, amount="9", email="theirs@example.org")
    mine, token = _signed_in_with_plan(client, simulator, mailbox, "mine@example.org")
    other = db.session.scalar(
        select(CancellationAttempt.id).where(CancellationAttempt.plan_id == theirs.id)
    )
    assert other is None
    for path in ("pause", "cancel"):
        assert client.get(f"/manage/plans/{theirs.id}/{path}").status_code == 404
    posts = {
        "pause": {"months": "1"},
        "resume": {},
        "keep": {},
        "cancel": {"reason": "other", "timing": "now"},
    }
    for path, data in posts.items():
        answer = client.post(
            f"/manage/plans/{theirs.id}/{path}", data={"csrf_token": token, **data}
        )
        assert answer.status_code == 404, path
    # Nor an attempt of one's own reached through someone else's plan.
    attempt_id = _attempt_id(_cancel(client, mine.id, token, "other", "now"))
    assert client.get(f"/manage/plans/{theirs.id}/cancel/{attempt_id}").status_code == 404
    at_stripe = _at_stripe(simulator, theirs)
    assert (at_stripe["status"], at_stripe["pause_collection"]) == ("active", None)
    assert _plan(theirs.id).status is PlanStatus.ACTIVE
    # Signed out: the sign-in page, for any plan.
    anonymous = app.test_client()
    assert anonymous.get(f"/manage/plans/{mine.id}/pause").status_code == 303


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("pause", {"months": "7"}),
        ("pause", {"months": "0"}),
        ("pause", {"months": "1\x00"}),
        ("pause", {"months": ""}),
        ("cancel", {"reason": "too_expensive\x00", "timing": "now"}),
        ("cancel", {"reason": "x" * 5000, "timing": "now"}),
        ("cancel", {"reason": "too_expensive", "timing": "tomorrow"}),
        ("cancel", {"reason": "", "timing": "now"}),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    client, ctx, simulator, mailbox, path, data
) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "bad@example.org")
    answer = client.post(f"/manage/plans/{plan.id}/{path}", data={"csrf_token": token, **data})
    assert answer.status_code == 400, answer.text
    # NUL bytes are refused before the view (donations.security); the rest by the form.
    refused_by = (
        "We could not accept that request"
        if any("\x00" in v for v in data.values())
        else 'role="alert"'
    )
    assert refused_by in answer.text
    at_stripe = _at_stripe(simulator, plan)
    assert (at_stripe["pause_collection"], at_stripe["cancel_at_period_end"]) == (None, False)
    plan = _plan(plan.id)
    assert (plan.is_paused, plan.ends_at_period_end, plan.status) == (
        False,
        False,
        PlanStatus.ACTIVE,
    )
    assert db.session.scalar(select(func.count()).select_from(CancellationAttempt)) == 0
    # Without the form's token: refused too.
    assert client.post(f"/manage/plans/{plan.id}/pause", data={"months": "1"}).status_code == 400


def test_bad_offer_choices_are_refused(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "badoffer@example.org")
    attempt_id = _attempt_id(_cancel(client, plan.id, token, "other", "period_end"))
    url = f"/manage/plans/{plan.id}/cancel/{attempt_id}"
    months = "Choose to skip the next payment, or a pause of 1, 2 or 3 months."
    for data, message in (
        ({"choice": "pause", "months": "7"}, months),
        ({"choice": "pause"}, months),
        (
            {"choice": "lower_amount", "amount": "15"},
            "Enter an amount lower than what you give now.",
        ),
        ({"choice": "lower_amount", "amount": "-5"}, 'role="alert"'),
        ({"choice": "lower_amount", "amount": "NaN"}, 'role="alert"'),
        ({"choice": "annual", "amount": "1e9"}, 'role="alert"'),
        ({"choice": "upgrade"}, "Choose one of the options shown."),
        ({"choice": "cancel\x00"}, "We could not accept that request"),
    ):
        answer = client.post(url, data={"csrf_token": token, **data})
        assert answer.status_code == 400, data
        assert message in (answer.text if message.startswith("role=") else squash(answer.text))
    attempt = db.session.get(CancellationAttempt, attempt_id)
    assert attempt is not None
    assert attempt.status is AttemptStatus.OFFERED
    at_stripe = _at_stripe(simulator, plan)
    assert (at_stripe["pause_collection"], at_stripe["cancel_at_period_end"]) == (None, False)


# -- in Russian ------------------------------------------------------------------------------


def test_the_pages_in_russian(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "ru@example.org")
    refresh()
    page = client.get(f"/manage/plans/{plan.id}/pause?lang=ru")
    assert page.status_code == 200
    assert "Пропустить следующий платёж" in page.text
    client.post(f"/manage/plans/{plan.id}/pause", data={"csrf_token": token, "months": "1"})
    refresh()
    account = squash(client.get("/manage/account").text)
    assert "Приостановлено до" in account
    refresh()
    cancel = client.get(f"/manage/plans/{plan.id}/cancel").text
    assert "Почему вы отменяете поддержку?" in cancel


# -- what the webhooks store ----------------------------------------------------------------


def test_a_pause_or_an_end_set_at_stripe_shows_once_its_event_arrives(
    client, ctx, simulator, mailbox
) -> None:
    plan, _ = _signed_in_with_plan(client, simulator, mailbox, "dashboard@example.org")
    path = f"/v1/subscriptions/{plan.stripe_subscription_id}"
    resumes_at = int((datetime.now(UTC) + timedelta(days=40)).timestamp())
    # Staff pause it in Stripe's dashboard: nothing shows until Stripe tells us.
    stripe_api(
        simulator,
        "POST",
        path,
        **{"pause_collection[behavior]": "void", "pause_collection[resumes_at]": resumes_at},
    )
    assert "Paused until" not in card(client.get("/manage/account").text, f"plan-{plan.id}")
    for _ in range(3):  # duplicates: one state
        _sync_from_event(client, plan)
    plan = _plan(plan.id)
    assert plan.paused_until == datetime.fromtimestamp(resumes_at, UTC)
    assert "Paused until" in card(client.get("/manage/account").text, f"plan-{plan.id}")

    stripe_api(simulator, "POST", path, pause_collection="", cancel_at_period_end="true")
    _sync_from_event(client, plan)
    plan = _plan(plan.id)
    assert (plan.is_paused, plan.ends_at_period_end) == (False, True)
    shown = card(client.get("/manage/account").text, f"plan-{plan.id}")
    assert "Paused until" not in shown
    assert "Cancels on" in shown


def test_plan_changes_are_rate_limited(client, ctx, simulator, mailbox) -> None:
    plan, token = _signed_in_with_plan(client, simulator, mailbox, "limit@example.org")
    answers = [
        client.post(f"/manage/plans/{plan.id}/pause", data={"csrf_token": token, "months": "7"})
        for _ in range(11)
    ]
    assert [a.status_code for a in answers] == [400] * 10 + [429]
    assert _at_stripe(simulator, plan)["pause_collection"] is None
