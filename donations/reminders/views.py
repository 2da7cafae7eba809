"""Remind me later: the signup, its confirmation, and unsubscribing."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale

from donations.db import commit
from donations.extensions import csrf, limiter
from donations.reminders.forms import ReminderForm, UnsubscribeForm
from donations.reminders.services import (
    find_reminder,
    hash_from_unsubscribe_token,
    is_unsubscribed,
    schedule_reminder,
    unsubscribe,
)
from donations.support.services import load_ask_config

bp = Blueprint("reminders", __name__, url_prefix="/reminders")

_SCHEDULED = "reminder_scheduled"


def _locale() -> str:
    return str(get_locale() or "en")


def _signup_limit() -> str:
    return str(current_app.config["SETTINGS"].reminder_rate_limit)


def _render_signup(form: ReminderForm, status: int = 200) -> ResponseReturnValue:
    prefill = form.prefill(load_ask_config())
    return (
        render_template("reminders/signup.html", form=form, prefill=prefill),
        status,
    )


def _referrer_elsewhere() -> str | None:
    """The page that linked here, unless it is one of ours (the ask itself)."""
    referrer = request.referrer or ""
    return referrer if referrer and urlsplit(referrer).netloc != request.host else None


@bp.get("/new")
def signup() -> ResponseReturnValue:
    args = request.args
    form = ReminderForm(
        formdata=None,
        frequency=args.get("frequency", "")[:10],
        currency=args.get("currency", "")[:3],
        amount=args.get("amount", "")[:20],
        source=(args.get("source") or _referrer_elsewhere() or "")[:500],
    )
    return _render_signup(form)


@bp.post("/new")
@limiter.limit(_signup_limit, methods=["POST"])
def create() -> ResponseReturnValue:
    form = ReminderForm()
    if not form.validate():
        return _render_signup(form, 400)
    reminder = schedule_reminder(
        email=form.email.data,
        months=int(form.months.data),
        locale=_locale(),
        prefill=form.prefill(load_ask_config()),
        source=form.source_url(),
    )
    commit()
    session[_SCHEDULED] = reminder.id
    return redirect(url_for("reminders.scheduled"), 303)


@bp.get("/scheduled")
def scheduled() -> ResponseReturnValue:
    reminder_id = session.get(_SCHEDULED)
    reminder = find_reminder(reminder_id) if isinstance(reminder_id, int) else None
    if reminder is None:
        return redirect(url_for("reminders.signup"), 303)
    return render_template("reminders/scheduled.html", reminder=reminder)


def _invalid_link() -> ResponseReturnValue:
    return render_template("reminders/invalid_link.html"), 400


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> ResponseReturnValue:
    # Mail scanners follow links: a GET only shows the question.
    hashed = hash_from_unsubscribe_token(token)
    if hashed is None:
        return _invalid_link()
    return render_template(
        "reminders/unsubscribe.html",
        form=UnsubscribeForm(),
        token=token,
        already=is_unsubscribed(hashed),
    )


# Exempt from CSRF: RFC 8058 one-click unsubscribe is POSTed by the mail
# provider, with no cookies or form token (https://www.rfc-editor.org/rfc/rfc8058#section-3.2).
# The signed token in the URL is the authority, and the body must say
# List-Unsubscribe=One-Click. The button on the GET page posts to
# unsubscribe_confirm instead, which keeps its CSRF check.
@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_one_click(token: str) -> ResponseReturnValue:
    hashed = hash_from_unsubscribe_token(token)
    if hashed is None:
        return _invalid_link()
    if request.form.get("List-Unsubscribe") != "One-Click":
        return render_template("reminders/invalid_link.html", one_click=True), 400
    unsubscribe(hashed)
    commit()
    return render_template("reminders/unsubscribed.html")


@bp.post("/unsubscribe/<token>/confirm")
def unsubscribe_confirm(token: str) -> ResponseReturnValue:
    hashed = hash_from_unsubscribe_token(token)
    if hashed is None:
        return _invalid_link()
    form = UnsubscribeForm()
    if not form.validate():
        return render_template(
            "reminders/unsubscribe.html", form=form, token=token, already=False, expired=True
        ), 400
    unsubscribe(hashed)
    commit()
    return render_template("reminders/unsubscribed.html")
