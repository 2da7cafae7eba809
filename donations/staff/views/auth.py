"""Signing in and out: password, then a TOTP code (enrolled at the first login).

Every answer to the password form is one of two, whatever the address typed:
"The email or password is not correct." or "Too many attempts: try again in
N s." (429 with Retry-After), after the same argon2 work
(:func:`donations.staff.services.check_password`).
"""

from __future__ import annotations

import base64
from typing import Any

import qrcode
import qrcode.image.svg
from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from donations.db import commit, utcnow
from donations.extensions import limiter
from donations.security import safe_path
from donations.staff.auth import PENDING_KEY, SESSION_KEY, current_staff, require_staff
from donations.staff.forms import STAFF_LANGUAGES, AccountForm, ActionForm, CodeForm, LoginForm
from donations.staff.models import StaffLoginChallenge
from donations.staff.services import (
    DEVICE_MAX_AGE,
    LoginOutcome,
    audit,
    challenge_failed,
    check_password,
    check_totp,
    code_wait,
    device_mark,
    device_trusted,
    logout,
    new_totp_secret,
    open_challenge,
    start_challenge,
    start_session,
    totp_uri,
    use_challenge,
)
from donations.staff.views.blueprint import bp

# The cookie that marks a browser which signed in to an account before.
DEVICE_COOKIE = "staff_device"
BAD_CREDENTIALS = "The email or password is not correct."


def _login_limit() -> str:
    return str(current_app.config["SETTINGS"].staff_login_rate_limit)


def _safe_next(target: str | None) -> str:
    kept = safe_path(target, default="")
    if kept.startswith("/staff/") and "//" not in kept:
        return kept
    return url_for("staff.dashboard")


def _wait_message(seconds: int) -> str:
    return f"Too many attempts: try again in {seconds} s."


def _pending() -> StaffLoginChallenge | None:
    token = session.get(PENDING_KEY)
    row = open_challenge(token) if isinstance(token, str) else None
    if row is None:
        session.pop(PENDING_KEY, None)
    return row


def _start_over() -> ResponseReturnValue:
    flash("Please sign in again.")
    return redirect(url_for("staff.login"))


def _signed_in(challenge: StaffLoginChallenge, *, enrolled: bool) -> ResponseReturnValue:
    staff = challenge.staff
    if not use_challenge(challenge):
        commit()
        session.pop(PENDING_KEY, None)
        return _start_over()
    token = start_session(staff, enrolled=enrolled)
    next_path = challenge.next_path
    commit()
    # A fresh cookie session: nothing from before the login carries over
    # (no fixation), apart from the language choice.
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    session[SESSION_KEY] = token
    response = redirect(_safe_next(next_path))
    response.set_cookie(
        DEVICE_COOKIE,
        device_mark(staff),
        max_age=int(DEVICE_MAX_AGE.total_seconds()),
        path="/staff",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


def _throttled(template: str, seconds: int, **context: Any) -> ResponseReturnValue:
    # No Retry-After of our own: the rate limiter's (per address) is sent on these pages.
    return render_template(template, message=_wait_message(seconds), **context), 429


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_staff() is not None:
        return redirect(url_for("staff.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        result = check_password(
            email,
            form.password.data or "",
            trusted_device=device_trusted(request.cookies.get(DEVICE_COOKIE), email),
        )
        if result.outcome is LoginOutcome.OK and result.staff is not None:
            session[PENDING_KEY] = start_challenge(result.staff, request.args.get("next", ""))
            enrolled = result.staff.totp_enrolled_at is not None
            commit()
            return redirect(url_for("staff.login_code" if enrolled else "staff.enrol"))
        commit()
        if result.outcome is LoginOutcome.THROTTLED:
            return _throttled("staff/login.html", result.retry_after, form=form)
        return render_template("staff/login.html", form=form, message=BAD_CREDENTIALS), 401
    status = 400 if request.method == "POST" else 200
    return render_template("staff/login.html", form=form, message=None), status


def _code_step(template: str, *, enrolling: bool, **context: Any) -> ResponseReturnValue:
    """The second step, shared by the code page and enrolment."""
    challenge = _pending()
    if challenge is None:
        return _start_over()
    staff = challenge.staff
    if (staff.totp_enrolled_at is None) is not enrolling:
        return redirect(url_for("staff.enrol" if enrolling is False else "staff.login_code"))
    if enrolling:
        new_totp_secret(staff)
    form = CodeForm()
    message = None
    status = 200
    if form.validate_on_submit():
        wait = code_wait(
            staff, trusted_device=device_trusted(request.cookies.get(DEVICE_COOKIE), staff.email)
        )
        if wait:
            commit()
            return _throttled(template, wait, form=form, **_page(staff, enrolling))
        if check_totp(staff, form.code.data or ""):
            return _signed_in(challenge, enrolled=enrolling)
        wait = challenge_failed(challenge)
        commit()
        if open_challenge(session.get(PENDING_KEY) or "") is None:
            session.pop(PENDING_KEY, None)
            flash("Too many wrong codes: sign in again.")
            return redirect(url_for("staff.login"))
        if wait:
            return _throttled(template, wait, form=form, **_page(staff, enrolling))
        message = (
            "That code is not correct. Check the time on your phone and try the next one."
            if enrolling
            else "That code is not correct, or was used already. Wait for the next one."
        )
        status = 401
    elif request.method == "POST":
        status = 400
    commit()
    return render_template(template, form=form, message=message, **_page(staff, enrolling)), status


def _page(staff: Any, enrolling: bool) -> dict[str, Any]:
    if not enrolling:
        return {}
    secret = staff.totp_secret or ""
    image = qrcode.make(totp_uri(staff), image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    qr_uri = "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()
    key = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return {"qr_uri": qr_uri, "manual_key": key}


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login_code() -> ResponseReturnValue:
    return _code_step("staff/code.html", enrolling=False)


@bp.route("/login/enrol", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def enrol() -> ResponseReturnValue:
    return _code_step("staff/enrol.html", enrolling=True)


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


@bp.route("/account", methods=["GET", "POST"])
@require_staff
def account() -> ResponseReturnValue:
    """The signed-in member's own settings: the back office's language."""
    staff = current_staff()
    assert staff is not None  # require_staff
    form = AccountForm(data={"locale": staff.locale})
    if form.validate_on_submit():
        if form.locale.data != staff.locale:
            audit(
                "staff.locale_changed",
                target=f"staff:{staff.id}",
                staff=staff,
                before=staff.locale,
                after=form.locale.data,
            )
            staff.locale = form.locale.data
            commit()
        flash("Your settings are saved.")
        return redirect(url_for("staff.account"))
    return render_template(
        "staff/account.html", form=form, languages=STAFF_LANGUAGES, now=utcnow()
    ), 400 if form.errors else 200
