"""Staff propose a change to a supporter's plan (/staff/plans/<id>/offer): an upgrade link."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from donations.ask.config import GiftError
from donations.db import commit, db
from donations.manage import offers, plans
from donations.manage.forms import ActionForm, typed_amount
from donations.staff.auth import require_role
from donations.staff.models import Role
from donations.supporters.models import RecurringPlan

bp = Blueprint("manage_offers", __name__, url_prefix="/staff/plans")


def _form(plan: RecurringPlan, error: str | None = None, status: int = 200) -> ResponseReturnValue:
    return render_template(
        "manage/staff_offer.html",
        plan=plan,
        form=ActionForm(),
        error=error,
        amount=typed_amount(),
        frequency=request.form.get("frequency") or plan.frequency.value,
        can_change=plans.can_change(plan),
        cover_fee=request.form.get("cover_fee") == "1",
    ), status


@bp.route("/<int:plan_id>/offer", methods=["GET", "POST"])
@require_role(Role.FINANCE)
def offer(plan_id: int) -> ResponseReturnValue:
    plan = db.get_or_404(RecurringPlan, plan_id)
    if request.method == "GET":
        return _form(plan)
    if not ActionForm().validate():
        return _form(plan, "The form expired; please try again.", 400)
    try:
        change = offers.make_offer(
            plan,
            typed_amount(),
            request.form.get("frequency") or "",
            cover_fee=request.form.get("cover_fee") == "1",
        )
    except (GiftError, plans.ChangeRefused) as exc:
        return _form(plan, str(exc), 400)
    offers.send_offer(plan, change, g.staff)
    commit()
    flash(
        f"A link proposing {change.total.format()} {change.frequency.value}"
        f"{' (with the processing fee covered)' if change.fee_cover else ''} is on its way "
        f"to {plan.supporter.email}."
    )
    return redirect(url_for("staff.supporter", supporter_id=plan.supporter_id), 303)
