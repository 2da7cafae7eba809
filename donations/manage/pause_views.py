"""/manage/plans/<id>/...: skip, pause, resume and cancel a plan (donations.manage.pause)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext

from donations.db import commit, db
from donations.extensions import limiter
from donations.manage import pause, plans
from donations.manage.forms import ActionForm, typed_amount
from donations.manage.models import ManageSession
from donations.manage.views import _locale, plan_or_404, private, signed_in
from donations.supporters.models import PlanStatus, RecurringPlan
from donations.supporters.retention import CancellationAttempt, CancellationTiming

bp = Blueprint("manage_pause", __name__, url_prefix="/manage/plans")


bp.after_request(private)


def _problem(code: str) -> str:
    return {
        "months": _("Choose to skip the next payment, or a pause of 1, 2 or 3 months."),
        "reason": _("Choose a reason from the list."),
        "timing": _("Choose when your support should end."),
        "offer": _("Choose one of the options shown."),
        "not_lower": _("Enter an amount lower than what you give now."),
        "decided": _("You have already decided about this cancellation."),
        "not_now": _("This plan cannot be changed that way now."),
        "stripe": _(
            "Our payment provider did not confirm the change, so nothing was changed. "
            "Please try again in a few minutes."
        ),
    }.get(code, _("Nothing was changed. Please try again."))


def _date(value: Any) -> str:
    # The pages' own date filter: the reporting time zone, the reader's language.
    return str(current_app.jinja_env.filters["date_text"](value)) if value is not None else ""


def _confirmed(plan: RecurringPlan) -> str:
    """What Stripe has confirmed for the plan, in the supporter's words."""
    if plan.status is PlanStatus.CANCELED:
        return _("Cancelled: no further payments")
    if plan.ends_at_period_end:
        when = plan.cancel_at or plan.next_renewal_at
        return _(
            "Your support ends on %(date)s. No further payments will be taken.", date=_date(when)
        )
    if plan.is_paused and plan.paused_until is not None:
        return _(
            "Paused until %(date)s. Nothing will be charged until then.",
            date=_date(plan.paused_until),
        )
    if plan.is_paused:
        return _("Paused.")
    return _("Your support continues as before.")


def _back() -> ResponseReturnValue:
    return redirect(url_for("manage.account") + "#plans", 303)


def _refused(error: pause.PlanActionRefused) -> ResponseReturnValue:
    db.session.rollback()
    flash(error.message or _problem(error.code))
    return _back()


# -- skip, pause, resume ------------------------------------------------------------------


def _render_pause(
    plan: RecurringPlan, form: ActionForm, error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "manage/pause.html",
        plan=plan,
        form=form,
        months=pause.PAUSE_MONTHS,
        error=error,
        can_pause=pause.can_pause(plan),
    ), status


@bp.get("/<int:plan_id>/pause")
@signed_in
def pause_page(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    return _render_pause(plan_or_404(row, plan_id), ActionForm())


@bp.post("/<int:plan_id>/pause")
@limiter.limit(plans.change_limit, methods=["POST"])
@signed_in
def pause_plan(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan = plan_or_404(row, plan_id)
    form = ActionForm()
    if not form.validate():
        return _render_pause(plan, form, _("Nothing was changed. Please try again."), 400)
    choice = request.form.get("months", "")
    try:
        if choice == "skip":
            pause.skip_next(row, plan)
        elif choice in {str(m) for m in pause.PAUSE_MONTHS}:
            pause.pause(row, plan, int(choice))
        else:
            return _render_pause(plan, form, _problem("months"), 400)
    except pause.PlanActionRefused as exc:
        db.session.rollback()
        return _render_pause(plan, form, _problem(exc.code), 409 if exc.code != "months" else 400)
    commit()
    flash(_confirmed(plan))
    return _back()


def _one_click(
    row: ManageSession, plan_id: int, change: Callable[[ManageSession, RecurringPlan], object]
) -> ResponseReturnValue:
    """A change made with one button (resume, keep): what Stripe confirmed, or why not."""
    plan = plan_or_404(row, plan_id)
    if not ActionForm().validate():
        flash(_problem(""))
        return _back()
    try:
        change(row, plan)
    except pause.PlanActionRefused as exc:
        return _refused(exc)
    commit()
    flash(_confirmed(plan))
    return _back()


@bp.post("/<int:plan_id>/resume")
@limiter.limit(plans.change_limit, methods=["POST"])
@signed_in
def resume_plan(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    return _one_click(row, plan_id, pause.resume)


@bp.post("/<int:plan_id>/keep")
@limiter.limit(plans.change_limit, methods=["POST"])
@signed_in
def keep_plan(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    return _one_click(row, plan_id, pause.keep)


# -- cancelling -------------------------------------------------------------------------------


def _render_reason(
    plan: RecurringPlan, form: ActionForm, error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "manage/cancel_reason.html",
        plan=plan,
        form=form,
        reasons=pause.reasons(),
        chosen=request.form.get("reason") if request.method == "POST" else None,
        timing=(request.form.get("timing") if request.method == "POST" else None)
        or CancellationTiming.PERIOD_END.value,
        error=error,
        can_cancel=pause.can_cancel(plan),
    ), status


@bp.get("/<int:plan_id>/cancel")
@signed_in
def cancel_page(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    return _render_reason(plan_or_404(row, plan_id), ActionForm())


@bp.post("/<int:plan_id>/cancel")
@limiter.limit(plans.change_limit, methods=["POST"])
@signed_in
def start_cancel(row: ManageSession, plan_id: int) -> ResponseReturnValue:
    plan = plan_or_404(row, plan_id)
    form = ActionForm()
    if not form.validate():
        return _render_reason(plan, form, _problem(""), 400)
    try:
        attempt = pause.start_cancellation(
            row, plan, request.form.get("reason", ""), request.form.get("timing", "")
        )
        if not pause.offers_of(attempt):
            pause.decide(row, attempt, pause.Decision(None), _locale())
    except pause.PlanActionRefused as exc:
        db.session.rollback()
        status = 409 if exc.code in ("not_now", "stripe") else 400
        return _render_reason(plan, form, _problem(exc.code), status)
    commit()
    if pause.offers_of(attempt):
        return redirect(url_for("manage_pause.offers", plan_id=plan.id, attempt_id=attempt.id), 303)
    flash(_confirmed(plan))
    return _back()


def _attempt(row: ManageSession, plan_id: int, attempt_id: int) -> CancellationAttempt:
    attempt = pause.own_attempt(row, plan_id, attempt_id)
    if attempt is None:
        abort(404)
    return attempt


def _render_offers(
    attempt: CancellationAttempt, form: ActionForm, error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "manage/cancel_offers.html",
        attempt=attempt,
        plan=attempt.plan,
        offers=pause.offers_of(attempt),
        months=pause.PAUSE_MONTHS,
        reminder_months=pause.REMINDER_INSTEAD_MONTHS,
        annual=pause.annual_suggestion(attempt.plan),
        amount=request.form.get("amount") if request.method == "POST" else None,
        form=form,
        error=error,
    ), status


@bp.get("/<int:plan_id>/cancel/<int:attempt_id>")
@signed_in
def offers(row: ManageSession, plan_id: int, attempt_id: int) -> ResponseReturnValue:
    attempt = _attempt(row, plan_id, attempt_id)
    if attempt.decided_at is not None:
        # Each offer is made once per attempt: a decided one is not shown again.
        flash(_confirmed(attempt.plan))
        return _back()
    return _render_offers(attempt, ActionForm())


@bp.post("/<int:plan_id>/cancel/<int:attempt_id>")
@limiter.limit(plans.change_limit, methods=["POST"])
@signed_in
def decide(row: ManageSession, plan_id: int, attempt_id: int) -> ResponseReturnValue:
    attempt = _attempt(row, plan_id, attempt_id)
    form = ActionForm()
    if not form.validate():
        return _render_offers(attempt, form, _problem(""), 400)
    choice = request.form.get("choice", "")
    months: int | None = None
    if choice == "pause":
        raw = request.form.get("months", "")
        if raw not in {str(m) for m in pause.PAUSE_MONTHS}:
            return _render_offers(attempt, form, _problem("months"), 400)
        months = int(raw)
    if choice != "cancel" and choice not in pause.offers_of(attempt):
        return _render_offers(attempt, form, _problem("offer"), 400)
    amount = typed_amount() if choice in ("lower_amount", "annual") else None
    decision = pause.Decision(None if choice == "cancel" else choice, months, amount)
    try:
        pause.decide(row, attempt, decision, _locale())
    except pause.PlanActionRefused as exc:
        if exc.code == "decided":
            return _refused(exc)
        db.session.rollback()
        status = 400 if exc.code in ("amount", "not_lower") else 409
        return _render_offers(attempt, form, exc.message or _problem(exc.code), status)
    commit()
    plan = attempt.plan
    if decision.offer == "reminder":
        months = pause.REMINDER_INSTEAD_MONTHS
        flash(
            ngettext(
                "We will remind you in %(num)d month.",
                "We will remind you in %(num)d months.",
                months,
            )
        )
    elif decision.offer is not None:
        flash(_("Thank you for staying with us."))
    flash(_confirmed(plan))
    return _back()
