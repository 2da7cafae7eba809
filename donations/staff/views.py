"""The back office: sign-in, dashboard, supporters, audit log, team and settings."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import qrcode
import qrcode.image.svg
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from donations.db import commit, db, utcnow
from donations.extensions import limiter
from donations.money import Money
from donations.staff import dashboard as dash
from donations.staff.auth import (
    PENDING_KEY,
    SESSION_KEY,
    current_staff,
    has_role,
    require_role,
    require_staff,
)
from donations.staff.charts import revenue_chart
from donations.staff.forms import (
    ActionForm,
    CancelPlanForm,
    CodeForm,
    LoginForm,
    NoteForm,
    RefundForm,
    RoleForm,
    SettingsForm,
)
from donations.staff.models import RefundStatus, Role, StaffUser
from donations.staff.services import (
    LoginOutcome,
    audit,
    audit_page,
    check_password,
    check_totp,
    is_locked,
    list_staff,
    logout,
    new_totp_secret,
    reset_second_factor,
    set_active,
    set_role,
    start_session,
    totp_uri,
    unlock,
)
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
from donations.supporters.models import Donation, RecurringPlan, Supporter

bp = Blueprint("staff", __name__, url_prefix="/staff")

# Password accepted, second factor pending: this long to type the code.
PENDING_SECONDS = 300


def _login_limit() -> str:
    return str(current_app.config.get("STAFF_LOGIN_RATE_LIMIT", "10 per minute;60 per hour"))


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"has_role": has_role, "Role": Role}


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/staff") and "\\" not in target and "//" not in target:
        return target
    return url_for("staff.dashboard")


# -- signing in -------------------------------------------------------------


def _pending_staff() -> tuple[StaffUser | None, dict[str, Any]]:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None, {}
    staff = db.session.get(StaffUser, int(pending.get("id", 0)))
    if staff is None or not staff.active:
        session.pop(PENDING_KEY, None)
        return None, {}
    return staff, pending


def _signed_in(staff: StaffUser, pending: dict[str, Any], *, enrolled: bool) -> ResponseReturnValue:
    token = start_session(staff, enrolled=enrolled)
    commit()
    # A fresh cookie session: nothing from before the login carries over
    # (no fixation), apart from the language choice.
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    session[SESSION_KEY] = token
    return redirect(_safe_next(pending.get("next")))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_staff() is not None:
        return redirect(url_for("staff.dashboard"))
    form = LoginForm()
    message = None
    status = 200
    if form.validate_on_submit():
        result = check_password(form.email.data or "", form.password.data or "")
        if result.outcome is LoginOutcome.OK and result.staff is not None:
            session[PENDING_KEY] = {
                "id": result.staff.id,
                "at": time.time(),
                "next": request.args.get("next", ""),
            }
            enrolled = result.staff.totp_enrolled_at is not None
            commit()
            return redirect(url_for("staff.login_code" if enrolled else "staff.enrol"))
        commit()
        status = 401
        if result.outcome is LoginOutcome.LOCKED:
            message = (
                "Too many failed attempts: this account is locked for 15 minutes. "
                "An admin can unlock it sooner."
            )
        else:
            message = "The email or password is not correct."
    elif request.method == "POST":
        status = 400
    return render_template("staff/login.html", form=form, message=message), status


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login_code() -> ResponseReturnValue:
    staff, pending = _pending_staff()
    if staff is None:
        flash("Please sign in again.")
        return redirect(url_for("staff.login"))
    if staff.totp_enrolled_at is None:
        return redirect(url_for("staff.enrol"))
    form = CodeForm()
    message = None
    status = 200
    if form.validate_on_submit():
        if check_totp(staff, form.code.data or ""):
            return _signed_in(staff, pending, enrolled=False)
        commit()
        if is_locked(staff):
            session.pop(PENDING_KEY, None)
            flash("Too many failed attempts: this account is locked for 15 minutes.")
            return redirect(url_for("staff.login"))
        message = "That code is not correct, or was used already. Wait for the next one."
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("staff/code.html", form=form, message=message), status


@bp.route("/login/enrol", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def enrol() -> ResponseReturnValue:
    staff, pending = _pending_staff()
    if staff is None:
        flash("Please sign in again.")
        return redirect(url_for("staff.login"))
    if staff.totp_enrolled_at is not None:
        return redirect(url_for("staff.login_code"))
    secret = new_totp_secret(staff)
    form = CodeForm()
    message = None
    status = 200
    if form.validate_on_submit():
        if check_totp(staff, form.code.data or ""):
            return _signed_in(staff, pending, enrolled=True)
        if is_locked(staff):
            commit()
            session.pop(PENDING_KEY, None)
            flash("Too many failed attempts: this account is locked for 15 minutes.")
            return redirect(url_for("staff.login"))
        message = "That code is not correct. Check the time on your phone and try the next one."
        status = 401
    elif request.method == "POST":
        status = 400
    commit()
    image = qrcode.make(totp_uri(staff), image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    qr_uri = "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()
    key = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render_template(
        "staff/enrol.html", form=form, message=message, qr_uri=qr_uri, manual_key=key
    ), status


@bp.post("/logout")
@require_staff
def sign_out() -> ResponseReturnValue:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        logout(token)
    commit()
    session.pop(SESSION_KEY, None)
    flash("You have signed out.")
    return redirect(url_for("staff.login"))


# -- dashboard ----------------------------------------------------------------


@bp.get("/")
@require_staff
def dashboard() -> ResponseReturnValue:
    zone = ZoneInfo(current_app.config["SETTINGS"].reporting_time_zone)
    data = dash.dashboard(zone, utcnow())
    charts = {
        currency: revenue_chart(currency, points) for currency, points in data.revenue.items()
    }
    return render_template("staff/dashboard.html", data=data, charts=charts, zone=zone.key)


# -- supporters -------------------------------------------------------------


@bp.get("/supporters")
@require_staff
def supporters() -> ResponseReturnValue:
    query = request.args.get("q", "")[:200]
    results = search_supporters(query) if query.strip() else []
    return render_template("staff/supporters.html", query=query, results=results)


def _supporter_or_404(supporter_id: int) -> Supporter:
    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None:
        abort(404)
    return supporter


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
        note_form=note_form or NoteForm(),
        action_form=ActionForm(),
    ), status


@bp.get("/supporters/<int:supporter_id>")
@require_staff
def supporter(supporter_id: int) -> ResponseReturnValue:
    return _render_supporter(_supporter_or_404(supporter_id))


@bp.post("/supporters/<int:supporter_id>/notes")
@require_role(Role.FINANCE)
def note(supporter_id: int) -> ResponseReturnValue:
    supporter = _supporter_or_404(supporter_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _render_supporter(supporter, form, 400)
    add_note(supporter, g.staff, form.body.data or "")
    commit()
    flash("Note added.")
    return redirect(url_for("staff.supporter", supporter_id=supporter.id), 303)


def _donation_or_404(donation_id: int) -> Donation:
    donation = db.session.get(Donation, donation_id)
    if donation is None:
        abort(404)
    return donation


@bp.route("/donations/<int:donation_id>/refund", methods=["GET", "POST"])
@require_role(Role.FINANCE)
def refund(donation_id: int) -> ResponseReturnValue:
    donation = _donation_or_404(donation_id)
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
    if attempt.status is RefundStatus.FAILED:
        flash(f"The refund failed: {attempt.error or 'Stripe refused it'}.", "error")
    else:
        refunded = Money(attempt.amount, attempt.currency).format()
        flash(f"Refunded {refunded} of donation #{donation.id} ({attempt.status}).")
    return redirect(url_for("staff.supporter", supporter_id=donation.supporter_id), 303)


@bp.post("/donations/<int:donation_id>/resend-receipt")
@require_role(Role.FINANCE)
def resend(donation_id: int) -> ResponseReturnValue:
    donation = _donation_or_404(donation_id)
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
    plan = db.session.get(RecurringPlan, plan_id)
    if plan is None:
        abort(404)
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


# -- admin ------------------------------------------------------------------


@bp.get("/audit")
@require_role(Role.ADMIN)
def audit_log() -> ResponseReturnValue:
    page = request.args.get("page", "1")
    entries, pages = audit_page(int(page) if page.isdigit() else 1)
    current = min(max(int(page) if page.isdigit() else 1, 1), pages)
    return render_template("staff/audit.html", entries=entries, page=current, pages=pages)


@bp.get("/team")
@require_role(Role.ADMIN)
def team() -> ResponseReturnValue:
    return render_template(
        "staff/team.html",
        members=list_staff(),
        action_form=ActionForm(),
        now=utcnow(),
    )


TEAM_ACTIONS = ("unlock", "reset-2fa", "deactivate", "activate", "role")


@bp.post("/team/<int:staff_id>/<any(" + ", ".join(f"'{a}'" for a in TEAM_ACTIONS) + "):action>")
@require_role(Role.ADMIN)
def team_action(staff_id: int, action: str) -> ResponseReturnValue:
    member = db.session.get(StaffUser, staff_id)
    if member is None:
        abort(404)
    form = RoleForm() if action == "role" else ActionForm()
    if not form.validate_on_submit():
        abort(400)
    if member.id == g.staff.id and action in ("deactivate", "role", "reset-2fa"):
        flash("You cannot change your own account here; ask another admin.", "error")
        return redirect(url_for("staff.team"), 303)
    match action:
        case "unlock":
            unlock(member)
        case "reset-2fa":
            reset_second_factor(member)
        case "deactivate":
            set_active(member, False)
        case "activate":
            set_active(member, True)
        case "role":
            set_role(member, Role(form.role.data))
    commit()
    flash(f"{member.email}: done ({action}).")
    return redirect(url_for("staff.team"), 303)


@bp.route("/settings", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def settings() -> ResponseReturnValue:
    from donations.support.ask import DEMO_ASK
    from donations.support.models import Setting
    from donations.support.services import ASK_SETTING, save_ask_config

    stored = db.session.get(Setting, ASK_SETTING)
    current = stored.value if stored is not None else DEMO_ASK
    form = SettingsForm()
    if request.method == "GET":
        form.ask.data = json.dumps(current, indent=2, ensure_ascii=False)
        return render_template("staff/settings.html", form=form)
    if not form.validate_on_submit():
        return render_template("staff/settings.html", form=form), 400
    try:
        data = json.loads(form.ask.data or "")
        if not isinstance(data, dict):
            raise ValueError("the settings must be a JSON object")
        save_ask_config(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        db.session.rollback()
        form.ask.errors = [f"These settings cannot be used: {type(exc).__name__}: {exc}"]
        return render_template("staff/settings.html", form=form), 400
    audit("setting.changed", target=f"setting:{ASK_SETTING}", before=current, after=data)
    commit()
    flash("Ask settings saved.")
    return redirect(url_for("staff.settings"), 303)
