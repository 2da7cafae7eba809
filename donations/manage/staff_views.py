"""Erasure requests from the portal, as admins see and decide them (/staff/erasure-requests)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from donations.db import commit, db
from donations.manage.erasure import (
    apply_if_nothing_charges,
    charging_plans,
    confirm_request,
    decline_request,
    pending_requests,
)
from donations.manage.forms import ActionForm
from donations.manage.models import ErasureRequest, ErasureStatus
from donations.staff.auth import require_role
from donations.staff.models import Role
from donations.staff.services import audit

bp = Blueprint("manage_staff", __name__, url_prefix="/staff/erasure-requests")


@bp.get("")
@require_role(Role.ADMIN)
def erasure_requests() -> ResponseReturnValue:
    waiting = pending_requests()
    applied = [r for r in waiting if apply_if_nothing_charges(r)]
    if applied:
        commit()
        waiting = pending_requests()
    return render_template(
        "manage/staff_erasure_requests.html",
        requests=[(r, charging_plans(r.supporter)) for r in waiting],
        applied=len(applied),
        form=ActionForm(),
    )


def _pending(request_id: int) -> ErasureRequest:
    row = db.get_or_404(ErasureRequest, request_id)
    if row.status is not ErasureStatus.PENDING:
        abort(404)  # decided already: nothing is left to decide here
    return row


@bp.post("/<int:request_id>/confirm")
@require_role(Role.ADMIN)
def confirm(request_id: int) -> ResponseReturnValue:
    row = _pending(request_id)
    if not ActionForm().validate():
        abort(400)
    supporter_id = row.supporter_id
    if confirm_request(row, staff=g.staff):
        audit(
            "erasure_request.confirmed",
            supporter_id=supporter_id,
            target=f"erasure_request:{row.id}",
        )
        flash(f"Supporter {supporter_id} erased: their plans were cancelled first.")
    else:
        flash(
            f"Supporter {supporter_id} could not be erased yet (Stripe did not cancel a plan).",
            "error",
        )
    commit()
    return redirect(url_for("manage_staff.erasure_requests"), 303)


@bp.post("/<int:request_id>/decline")
@require_role(Role.ADMIN)
def decline(request_id: int) -> ResponseReturnValue:
    row = _pending(request_id)
    note = (request.form.get("note") or "").strip()
    if not ActionForm().validate() or not note:
        flash("Say why the request is declined (the supporter may ask).", "error")
        return redirect(url_for("manage_staff.erasure_requests"), 303)
    decline_request(row, staff=g.staff, note=note)
    audit(
        "erasure_request.declined",
        supporter_id=row.supporter_id,
        target=f"erasure_request:{row.id}",
        note=row.note,
    )
    commit()
    flash(f"Erasure request {row.id} declined.")
    return redirect(url_for("manage_staff.erasure_requests"), 303)
