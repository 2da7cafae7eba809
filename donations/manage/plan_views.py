"""/manage/plans/<id>/...: a signed-in supporter changes their own plan.

Routes on the portal's blueprint (:mod:`donations.manage.views`). Another
supporter's plan id answers 404, as does one that is not a plan.
"""

from __future__ import annotations

import hashlib

from flask import flash, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from donations.ask.config import GiftError
from donations.db import commit
from donations.extensions import limiter
from donations.manage import offers, plans, services
from donations.manage.forms import ActionForm, typed_amount
from donations.manage.models import ManageSession
from donations.manage.views import SESSION_KEY, _locale, bp, plan_or_404, signed_in
from donations.payments.gateway import GatewayError
from donations.reminders.services import external_url
from donations.support import fraud
from donations.supporters.models import PlanStatus, RecurringPlan


def _session_key() -> str:
    """The rate limit's key for "this signed-in supporter", whichever client."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return "manage-plan:-"
    return "manage-plan:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def _account(plan: RecurringPlan) -> ResponseReturnValue:
    return redirect(url_for("manage.account") + f"#plan-{plan.id}", 303)


# -- amount and interval -----------------------------------------------------------------


def _change_form(
    plan: RecurringPlan, error: str | None = None, amount: str | None = None, status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "manage/plan_change.html",
        plan=plan,
        form=ActionForm(),
        error=error,
        amount=amount if amount is not None else plan.gift.major_text(),
        frequency=request.form.get("frequency") or plan.frequency.value,
        next_payment_at=plans.next_payment_after_change(plan),
    ), status


@bp.get("/plans/<int:plan_id>/change")
@signed_in
def change_plan(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan = plan_or_404(row, plan_id)
    if not plans.can_change(plan):
        flash(_("This plan cannot be changed now."))
        return _account(plan)
    return _change_form(plan)


@bp.post("/plans/<int:plan_id>/change")
@signed_in
def review_change(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan = plan_or_404(row, plan_id)
    amount = typed_amount()
    if not ActionForm().validate():
        return _change_form(plan, _("Nothing was changed. Please try again."), amount, 400)
    try:
        change = plans.propose_change(plan, amount, request.form.get("frequency") or "", _locale())
    except (GiftError, plans.ChangeRefused) as exc:
        return _change_form(plan, str(exc), amount, 400)
    return render_template(
        "manage/plan_change_confirm.html",
        plan=plan,
        change=change,
        form=ActionForm(),
        next_payment_at=plans.next_payment_after_change(plan),
    )


@bp.post("/plans/<int:plan_id>/change/confirm")
@limiter.limit(plans.change_limit, methods=["POST"])
@limiter.limit(plans.change_limit, methods=["POST"], key_func=_session_key, scope="manage-plan")
@signed_in
def confirm_change(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan = plan_or_404(row, plan_id)
    amount = typed_amount()
    if not ActionForm().validate():
        return _change_form(plan, _("Nothing was changed. Please try again."), amount, 400)
    try:
        # The confirm page's hidden fields: checked again, as anything a browser sends.
        change = plans.propose_change(plan, amount, request.form.get("frequency") or "")
        before = (plan.charge_total, plan.frequency.value)
        snapshot = plans.apply_change(plan, change)
    except (GiftError, plans.ChangeRefused) as exc:
        return _change_form(plan, str(exc), amount, 400)
    plans.record_change(plan, before, snapshot, source=row.source, by="supporter (manage)")
    plans.queue_change_email(plan, f"{before[0].amount}-{before[1]}-to-{plan.stripe_price_id}")
    commit()
    flash(_("Your support is changed. We have emailed you a confirmation."))
    return _account(plan)


# -- the payment method ----------------------------------------------------------------


def _method_page(
    plan: RecurringPlan, mode: str, client_secret: str | None, failed: bool = False
) -> ResponseReturnValue:
    from flask import current_app

    settings = current_app.config["SETTINGS"]
    return render_template(
        "manage/plan_payment_method.html",
        plan=plan,
        mode=mode,
        client_secret=client_secret,
        publishable_key=settings.stripe_publishable_key,
        return_url=external_url("manage.method_saved", plan_id=plan.id),
        declined_url=url_for("manage.method_declined", plan_id=plan.id),
        methods=[] if mode == "authenticate" else ["card"],
        failed=failed,
        past_due=plan.status is not PlanStatus.ACTIVE,
        locale=_locale(),
    )


@bp.get("/plans/<int:plan_id>/payment-method")
@limiter.limit(plans.change_limit)
@limiter.limit(plans.change_limit, key_func=_session_key, scope="manage-plan-method")
@signed_in
def replace_method(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan = plan_or_404(row, plan_id)
    if not plans.can_replace_method(plan):
        flash(_("This plan cannot be changed now."))
        return _account(plan)
    try:
        setup = plans.open_method_setup(plan)
    except GatewayError:
        flash(_("We could not reach our payment provider. Please try again in a moment."))
        return _account(plan)
    commit()
    return _method_page(plan, "setup", setup.client_secret)


@bp.get("/plans/<int:plan_id>/payment-method/done")
@limiter.limit(plans.change_limit)
@signed_in
def method_saved(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    """Where the page goes once Stripe.js has confirmed the SetupIntent (or the bank)."""
    plan = plan_or_404(row, plan_id)
    if not plans.can_replace_method(plan):
        return _account(plan)
    was_past_due = plan.status is not PlanStatus.ACTIVE
    try:
        outcome = plans.use_new_method(plan, pay_now=was_past_due)
    except GatewayError:
        flash(_("We could not reach our payment provider. Please try again in a moment."))
        return _account(plan)
    if outcome.state == "collect":
        commit()
        return redirect(url_for("manage.replace_method", plan_id=plan.id), 303)
    services.record(
        "payment_method_replaced",
        row.supporter,
        source=row.source,
        target=f"plan:{plan.id}",
        by="supporter (manage)",
        method=outcome.method_type,
        setup_intent=plan.stripe_setup_intent_id,
        outcome=outcome.state,
    )
    commit()
    match outcome.state:
        case "authenticate":
            return _method_page(plan, "authenticate", outcome.client_secret)
        case "paid":
            flash(_("Your new card is saved, and the payment that failed is now paid."))
        case "failed":
            flash(
                _(
                    "Your new card is saved, but the payment that failed was declined again. "
                    "Please try another card."
                )
            )
        case _:
            flash(_("Your new card is saved. We will use it for your next payment."))
    return _account(plan)


@bp.post("/plans/<int:plan_id>/payment-method/declined")
@signed_in
def method_declined(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan_or_404(row, plan_id)
    fraud.record_decline(get_remote_address())
    return jsonify(blocked=fraud.blocked(get_remote_address()))


# -- upgrade links (donations/manage/offers.py) ------------------------------------------


def _offer_refused(problem: offers.OfferProblem) -> ResponseReturnValue:
    status = 404 if problem is offers.OfferProblem.INVALID else 410
    return render_template("manage/offer_invalid.html", problem=problem.value), status


@bp.get("/offer/<token>")
def offer(token: str) -> ResponseReturnValue:
    # Mail scanners follow links: a GET only shows what would change.
    found = offers.open_offer(token)
    if isinstance(found, offers.OfferProblem):
        return _offer_refused(found)
    return render_template(
        "manage/offer.html",
        offer=found,
        plan=found.plan,
        change=found.change,
        form=ActionForm(),
        token=token,
        next_payment_at=plans.next_payment_after_change(found.plan),
    )


@bp.post("/offer/<token>")
@limiter.limit(plans.change_limit, methods=["POST"])
def accept_offer(token: str) -> ResponseReturnValue:
    found = offers.open_offer(token)
    if isinstance(found, offers.OfferProblem):
        return _offer_refused(found)
    if not ActionForm().validate():
        return redirect(url_for("manage.offer", token=token), 303)
    try:
        offers.accept_offer(found)
    except plans.ChangeRefused as exc:
        flash(str(exc))
        return redirect(url_for("manage.offer", token=token), 303)
    commit()
    return render_template("manage/offer_accepted.html", plan=found.plan)
