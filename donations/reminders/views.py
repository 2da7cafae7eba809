"""Remind me later: the signup, its confirmation, and unsubscribing."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale

from donations.ask.services import load_ask_config
from donations.db import commit
from donations.extensions import csrf, limiter
from donations.reminders.forms import ReminderForm, UnsubscribeForm
from donations.reminders.services import (
    confirm_opt_in,
    consent_from_opt_in_token,
    due_dates,
    hash_from_unsubscribe_token,
    is_unsubscribed,
    schedule_reminder,
    unsubscribe,
)
from donations.supporters.attribution import Attribution
from donations.supporters.models import ConsentStatus

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
    try:
        host = urlsplit(referrer).netloc
    except ValueError:  # e.g. "http://[": not a URL at all
        return None
    return referrer if referrer and host != request.host else None


@bp.get("/new")
def signup() -> ResponseReturnValue:
    args = request.args
    form = ReminderForm(
        formdata=None,
        frequency=args.get("frequency", "")[:10],
        currency=args.get("currency", "")[:3],
        amount=args.get("amount", "")[:20],
        source=(args.get("source") or _referrer_elsewhere() or "")[:500],
        **Attribution.from_args(args).as_args(),
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
        attribution=Attribution.from_args(
            {
                "article": form.article.data,
                "campaign": form.campaign.data,
                "variant": form.variant.data,
            }
        ),
    )
    commit()
    # The same page whatever the address's history (new, unsubscribed, erased,
    # bounced): what it says comes from this request, not from the database.
    due_at = reminder.due_at if reminder is not None else due_dates()[int(form.months.data)]
    session[_SCHEDULED] = {"email": form.email.data.strip(), "due_at": due_at.isoformat()}
    return redirect(url_for("reminders.scheduled"), 303)


@bp.get("/scheduled")
def scheduled() -> ResponseReturnValue:
    value = session.get(_SCHEDULED)
    try:
        if not isinstance(value, dict):
            raise ValueError("no signup in this session")
        email, due_at = str(value["email"]), datetime.fromisoformat(str(value["due_at"]))
    except (KeyError, ValueError):
        return redirect(url_for("reminders.signup"), 303)
    return render_template("reminders/scheduled.html", scheduled={"email": email, "due_at": due_at})


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


def _invalid_opt_in() -> ResponseReturnValue:
    return render_template("reminders/invalid_link.html", opt_in=True), 400


@bp.get("/again/<token>")
def opt_in_page(token: str) -> ResponseReturnValue:
    # From the double opt-in email. Mail scanners follow links: a GET only asks.
    consent = consent_from_opt_in_token(token)
    if consent is None or consent.status is ConsentStatus.EXPIRED:
        # Forged, too old, or overtaken by an unsubscribe since: spent.
        return _invalid_opt_in()
    return render_template(
        "reminders/opt_in.html",
        form=UnsubscribeForm(),
        token=token,
        done=consent.status is not ConsentStatus.PENDING,
    )


@bp.post("/again/<token>")
def opt_in_confirm(token: str) -> ResponseReturnValue:
    consent = consent_from_opt_in_token(token)
    if consent is None:
        return _invalid_opt_in()
    form = UnsubscribeForm()
    if not form.validate():
        return render_template(
            "reminders/opt_in.html", form=form, token=token, done=False, expired=True
        ), 400
    if consent.status is ConsentStatus.EXPIRED:  # withdrawn again since: the link is spent
        return _invalid_opt_in()
    confirm_opt_in(consent)
    commit()
    return render_template("reminders/opt_in.html", form=form, token=token, done=True)
