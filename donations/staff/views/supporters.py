"""What finance staff work with: the dashboard, supporters, refunds, plans, receipts, notes."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from donations.db import commit, db, utcnow
from donations.money import Money
from donations.payments.lifecycle import supporter_summary
from donations.payments.models import Refund, RefundStatus
from donations.staff import dashboard as dash
from donations.staff.auth import require_role, require_staff
from donations.staff.charts import revenue_chart
from donations.staff.forms import ActionForm, CancelPlanForm, NoteForm, RefundForm, staff_locale
from donations.staff.models import Role
from donations.staff.supporters import (
    ActionRefused,
    add_note,
    cancel_plan,
    refund_donation,
    refundable,
    resend_receipt,
    search_supporters,
    timeline,
)
from donations.staff.views.blueprint import bp
from donations.supporters.models import Donation, RecurringPlan, Supporter


@bp.get("/")
@require_staff
def dashboard() -> ResponseReturnValue:
    zone = ZoneInfo(current_app.config["SETTINGS"].reporting_time_zone)
    data = dash.dashboard(zone, utcnow())
    charts = {
        currency: revenue_chart(currency, points, staff_locale())
        for currency, points in data.revenue.items()
    }
    return render_template("staff/dashboard.html", data=data, charts=charts, zone=zone.key)


# Emails, names and timelines are personal data: the finance role and above.
@bp.get("/supporters")
@require_role(Role.FINANCE)
def supporters() -> ResponseReturnValue:
    query = request.args.get("q", "")[:200]
    results = search_supporters(query) if query.strip() else []
    return render_template("staff/supporters.html", query=query, results=results)


def _render_supporter(
    supporter: Supporter, note_form: NoteForm | None = None, status: int = 200
) -> ResponseReturnValue:
    donations = db.session.scalars(
        select(Donation).where(Donation.supporter_id == supporter.id).order_by(Donation.id.desc())
    ).all()
    plans = db.session.scalars(
        select(RecurringPlan)
        .where(RecurringPlan.supporter_id == supporter.id)
        .order_by(RecurringPlan.id.desc())
    ).all()
    return render_template(
        "staff/supporter.html",
        supporter=supporter,
        donations=donations,
        plans=plans,
        refundable=refundable,
        items=timeline(supporter),
        summary=supporter_summary(supporter),
        note_form=note_form or NoteForm(),
        action_form=ActionForm(),
    ), status


@bp.get("/supporters/<int:supporter_id>")
@require_role(Role.FINANCE)
def supporter(supporter_id: int) -> ResponseReturnValue:
    return _render_supporter(db.get_or_404(Supporter, supporter_id))


@bp.post("/supporters/<int:supporter_id>/notes")
@require_role(Role.FINANCE)
def note(supporter_id: int) -> ResponseReturnValue:
    supporter = db.get_or_404(Supporter, supporter_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _render_supporter(supporter, form, 400)
    add_note(supporter, g.staff, form.body.data or "")
    commit()
    flash("Note added.")
    return redirect(url_for("staff.supporter", supporter_id=supporter.id), 303)


def refund_outcome(refund: Refund) -> tuple[str, str]:
    """The flash message saying what happened to the refund (and its category)."""
    money = Money(refund.amount, refund.currency).format()
    what = f"The refund of {money} of donation #{refund.donation_id}"
    match refund.status:
        case RefundStatus.SUCCEEDED:
            return f"{what} succeeded: the money is on its way back to the supporter.", "message"
        case RefundStatus.PENDING | RefundStatus.REQUIRES_ACTION:
            return f"{what} was accepted by Stripe and is pending.", "message"
        case RefundStatus.FAILED | RefundStatus.CANCELED:
            why = refund.error or refund.failure_reason or "Stripe refused it"
            return f"{what} failed: {why}. Nothing was refunded.", "error"
        case _:
            return f"{what} is waiting for Stripe's answer.", "message"


@bp.route("/donations/<int:donation_id>/refund", methods=["GET", "POST"])
@require_role(Role.FINANCE)
def refund(donation_id: int) -> ResponseReturnValue:
    donation = db.get_or_404(Donation, donation_id)
    left = refundable(donation)
    form = RefundForm(currency=donation.currency)
    if request.method == "GET":
        return render_template("staff/refund.html", donation=donation, left=left, form=form)
    if not form.validate_on_submit():
        return render_template("staff/refund.html", donation=donation, left=left, form=form), 400
    wanted = form.money or left
    if wanted.amount > left.amount:
        form.amount.errors = [f"At most {left.format()} can be refunded."]
        return render_template("staff/refund.html", donation=donation, left=left, form=form), 400
    if form.confirm.data != "yes" or not form.attempt.data:
        # Step two: say exactly what will happen, with a fresh attempt id
        # that makes the confirmation idempotent.
        form.attempt.data = uuid.uuid4().hex
        return render_template(
            "staff/refund_confirm.html", donation=donation, left=left, form=form, wanted=wanted
        )
    try:
        attempt = refund_donation(
            donation.id,
            form.money,
            staff=g.staff,
            attempt_key=form.attempt.data,
            reason=form.reason.data or "",
        )
    except ActionRefused as exc:
        db.session.rollback()
        form.amount.errors = [str(exc)]
        return render_template("staff/refund.html", donation=donation, left=left, form=form), 409
    commit()
    flash(*refund_outcome(attempt))
    return redirect(url_for("staff.supporter", supporter_id=donation.supporter_id), 303)


@bp.post("/donations/<int:donation_id>/resend-receipt")
@require_role(Role.FINANCE)
def resend(donation_id: int) -> ResponseReturnValue:
    donation = db.get_or_404(Donation, donation_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        resend_receipt(donation, g.staff)
    except ActionRefused as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        commit()
        flash(
            f"The receipt for donation #{donation.id} is on its way to {donation.supporter.email}."
        )
    return redirect(url_for("staff.supporter", supporter_id=donation.supporter_id), 303)


@bp.route("/plans/<int:plan_id>/cancel", methods=["GET", "POST"])
@require_role(Role.FINANCE)
def cancel(plan_id: int) -> ResponseReturnValue:
    plan = db.get_or_404(RecurringPlan, plan_id)
    form = CancelPlanForm()
    if request.method == "GET":
        return render_template("staff/cancel_plan.html", plan=plan, form=form)
    if not form.validate_on_submit():
        return render_template("staff/cancel_plan.html", plan=plan, form=form), 400
    try:
        cancel_plan(plan, g.staff, form.reason.data or "")
    except ActionRefused as exc:
        db.session.rollback()
        form.reason.errors = [str(exc)]
        return render_template("staff/cancel_plan.html", plan=plan, form=form), 409
    commit()
    flash(f"Plan #{plan.id} is cancelled; no further payments will be taken.")
    return redirect(url_for("staff.supporter", supporter_id=plan.supporter_id), 303)
