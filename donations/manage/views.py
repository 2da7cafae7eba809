"""Manage my support: /manage and what a signed-in supporter sees and does there."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _

from donations.db import commit, db
from donations.extensions import limiter
from donations.mail.addresses import normalise_address
from donations.manage import (
    choices,
    email_change,
    erasure,
    export,
    offers,
    receipts,
    services,
    statements,
)
from donations.manage.account import overview, own_gift, own_plan, own_reminder
from donations.manage.forms import ActionForm, EmailChangeForm, SignInForm
from donations.manage.models import ErasureStatus, ManageSession
from donations.manage.receipts import receipt_context
from donations.manage.tasks import send_sign_in_link_task
from donations.supporters.models import Donation, RecurringPlan, Supporter

bp = Blueprint("manage", __name__, url_prefix="/manage")

# The cookie-session key holding the server-side session's token.
SESSION_KEY = "manage_token"
_SENT_KEY = "manage_link_sent"
_ENVIRON_KEY = "donations.manage_session"

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


@bp.record_once
def _register_template_globals(state: Any) -> None:
    app: Flask = state.app
    # Used by every email's footer (templates/email/_manage.*) and the sign-in email.
    app.jinja_env.globals["manage_link"] = services.manage_link
    app.jinja_env.globals["manage_sign_in_url"] = services.sign_in_url
    app.jinja_env.globals["manage_email_change_url"] = email_change.confirm_url
    # A monthly plan's receipt proposes an upgrade when RECEIPT_UPGRADE_OFFER says so.
    app.jinja_env.globals["receipt_upgrade_offer"] = offers.receipt_offer


def _locale() -> str:
    return str(get_locale() or "en")


def _typed_address() -> str:
    """The rate limit's key for "links for this address", whoever asks."""
    return "manage:" + (normalise_address(request.form.get("email") or "")[:254] or "-")


# -- the session of this request -------------------------------------------------------


def current_session() -> ManageSession | None:
    environ = request.environ
    if _ENVIRON_KEY not in environ:
        token = session.get(SESSION_KEY)
        row = services.resume_session(token) if isinstance(token, str) else None
        if row is None and isinstance(token, str):
            session.pop(SESSION_KEY, None)
        if db.session.dirty or db.session.new or (row is None and isinstance(token, str)):
            # A touched last_seen_at, or a session that timed out here with its
            # audit entry: durable now, whatever the view does next.
            commit()
        environ[_ENVIRON_KEY] = row
    return cast("ManageSession | None", environ[_ENVIRON_KEY])


def signed_in(view: F) -> F:
    """Only for a signed-in supporter; others go to the sign-in page."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        had_token = isinstance(session.get(SESSION_KEY), str)
        row = current_session()
        if row is None:
            if had_token:
                flash(_("Your session has ended. Ask for a new link to sign in again."))
            return redirect(url_for("manage.sign_in"), 303)
        return view(row, *args, **kwargs)

    return cast(F, wrapped)


def _start(supporter: Supporter, source: str) -> ResponseReturnValue:
    token = services.start_session(supporter, source)
    commit()
    session[SESSION_KEY] = token
    session.pop(_SENT_KEY, None)
    return redirect(url_for("manage.account"), 303)


@bp.after_request
def private(response: Response) -> Response:
    """Personal data and live state: never from a cache, never indexed (every portal page)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def plan_or_404(row: ManageSession, plan_id: int) -> RecurringPlan:
    """One of the supporter's plans; another supporter's plan is not even acknowledged."""
    plan = own_plan(row.supporter, plan_id)
    if plan is None:
        abort(404)
    return plan


# -- signing in --------------------------------------------------------------------------


@bp.get("")
def sign_in() -> ResponseReturnValue:
    if current_session() is not None:
        return redirect(url_for("manage.account"), 303)
    return render_template("manage/sign_in.html", form=SignInForm())


@bp.post("")
@limiter.limit(services.sign_in_ip_limit, methods=["POST"])
@limiter.limit(services.sign_in_limit, key_func=_typed_address, methods=["POST"])
def request_link() -> ResponseReturnValue:
    form = SignInForm()
    if not form.validate():
        return render_template("manage/sign_in.html", form=form), 400
    email = (form.email.data or "").strip()
    # Whether the address is a supporter's is for the task to find out: this
    # request does the same work, and gives the same answer, for any address.
    send_sign_in_link_task.delay_on_commit(email, _locale())
    commit()
    session[_SENT_KEY] = email
    return redirect(url_for("manage.link_sent"), 303)


@bp.get("/sent")
def link_sent() -> ResponseReturnValue:
    email = session.get(_SENT_KEY)
    if not isinstance(email, str):
        return redirect(url_for("manage.sign_in"), 303)
    minutes = int(services.LINK_LIFETIME.total_seconds() // 60)
    return render_template("manage/sent.html", email=email, minutes=minutes)


def _invalid_link() -> ResponseReturnValue:
    return render_template("manage/link_invalid.html", form=SignInForm()), 410


def _link_page(
    template: str, token: str, email: str, expired_form: ActionForm | None = None
) -> ResponseReturnValue:
    """The page an emailed link opens: one button, whose POST does what the link is for.

    Mail scanners follow links: the GET only asks, so a scanner cannot spend
    one. A POST whose form has expired (``expired_form``) shows the page again.
    """
    if expired_form is None:
        return render_template(template, form=ActionForm(), token=token, email=email)
    return render_template(template, form=expired_form, token=token, email=email, expired=True), 400


@bp.get("/link/<token>")
def link(token: str) -> ResponseReturnValue:
    found = services.open_link(token)
    if found is None:
        return _invalid_link()
    return _link_page("manage/link.html", token, found.supporter.email)


@bp.post("/link/<token>")
def use_link(token: str) -> ResponseReturnValue:
    found = services.open_link(token)
    if found is None:
        return _invalid_link()
    form = ActionForm()
    if not form.validate():
        return _link_page("manage/link.html", token, found.supporter.email, form)
    supporter = found.supporter
    if not services.use_link(found):
        commit()
        return _invalid_link()
    return _start(supporter, services.SIGN_IN_SOURCE)


@bp.get("/e/<token>")
def email_link(token: str) -> ResponseReturnValue:
    """The "Manage your support" link in one of our emails: signs the supporter in."""
    found = services.supporter_from_email_link(token)
    if found is None:
        return _invalid_link()
    supporter, template = found
    return _start(supporter, f"email:{template}")


@bp.post("/sign-out")
@signed_in
def sign_out(row: ManageSession) -> ResponseReturnValue:
    form = ActionForm()
    if form.validate():
        services.end_session(row, "sign_out")
        commit()
        session.pop(SESSION_KEY, None)
        flash(_("You have signed out."))
        return redirect(url_for("manage.sign_in"), 303)
    return redirect(url_for("manage.account"), 303)


@bp.post("/sign-out-everywhere")
@signed_in
def sign_out_everywhere(row: ManageSession) -> ResponseReturnValue:
    form = ActionForm()
    if form.validate():
        ended = services.end_all_sessions(row.supporter, "sign_out_everywhere")
        commit()
        session.pop(SESSION_KEY, None)
        flash(_("You have signed out on every device (%(count)d sessions).", count=ended))
        return redirect(url_for("manage.sign_in"), 303)
    return redirect(url_for("manage.account"), 303)


# -- the account --------------------------------------------------------------------------


def _activity_text(entry: Any) -> str:
    """An audit entry of the supporter's, in their words."""
    source = str((entry.details or {}).get("source", ""))
    if source == services.SIGN_IN_SOURCE:
        how = _("with a sign-in link")
    elif source.startswith("email:"):
        how = _("from a link in an email")
    else:
        how = ""
    texts = {
        "manage.link_sent": _("A sign-in link was emailed"),
        "manage.signed_in": _("Signed in %(how)s", how=how),
        "manage.signed_out": _("Signed out"),
        "manage.session_ended": _("A session ended"),
        "manage.newsletter_changed": _("Newsletter choice changed"),
        "manage.reminders_changed": _("Reminder emails choice changed"),
        "manage.reminder_canceled": _("A reminder was cancelled"),
        "manage.receipt_downloaded": _("A receipt was downloaded"),
        "manage.statement_downloaded": _("A giving statement was downloaded"),
        "manage.data_exported": _("Your data was downloaded"),
        "manage.email_change_requested": _("An email address change was asked for"),
        "manage.email_changed": _("The email address was changed"),
        "manage.erasure_requested": _("Erasure was asked for"),
        "manage.plan_changed": _("A plan's amount or interval was changed"),
        "manage.payment_method_replaced": _("A plan's card was replaced"),
    }
    return texts.get(entry.action, entry.action.removeprefix("manage.").replace("_", " "))


def _render_account(
    row: ManageSession, email_form: EmailChangeForm | None = None, status: int = 200
) -> ResponseReturnValue:
    supporter = row.supporter
    return render_template(
        "manage/account.html",
        supporter=supporter,
        manage_session=row,
        view=overview(supporter),
        form=ActionForm(),
        email_form=email_form or EmailChangeForm(formdata=None),
        email_change=email_change.pending_change(supporter),
        erasure_request=erasure.pending_request(supporter),
        sessions=services.live_sessions(supporter),
        idle_minutes=int(services.IDLE_TIMEOUT.total_seconds() // 60),
        activity_text=_activity_text,
        statement_years=statements.statement_years(supporter),
    ), status


@bp.get("/account")
@signed_in
def account(row: ManageSession) -> ResponseReturnValue:
    supporter = row.supporter
    queued = erasure.pending_request(supporter)
    if queued is not None and erasure.apply_if_nothing_charges(queued):
        # Asked for while a plan could still charge them; nothing can now.
        commit()
        session.pop(SESSION_KEY, None)
        return render_template("manage/erased.html")
    return _render_account(row)


# -- receipts -------------------------------------------------------------------------------


def _recorded_download(
    row: ManageSession, action: str, file: tuple[str | bytes, str, str], **details: Any
) -> Response:
    """A file for the supporter (body, type, name), handed over once it is on their timeline."""
    body, mimetype, filename = file
    services.record(action, row.supporter, source=row.source, **details)
    commit()
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _paid_gift(row: ManageSession, donation_id: int) -> Donation:
    """One of the supporter's paid gifts; anyone else's, or an unpaid one, is a 404."""
    donation = own_gift(row.supporter, donation_id)
    if donation is None or not donation.is_paid:
        abort(404)
    return donation


@bp.get("/gifts/<int:donation_id>/receipt")
@signed_in
def receipt(row: ManageSession, donation_id: int) -> ResponseReturnValue:
    donation = _paid_gift(row, donation_id)
    return render_template("manage/receipt.html", **receipt_context(donation))


@bp.get("/gifts/<int:donation_id>/receipt.pdf")
@signed_in
def receipt_pdf(row: ManageSession, donation_id: int) -> ResponseReturnValue:
    donation = _paid_gift(row, donation_id)
    pdf = receipts.receipt_pdf(donation, _locale())
    return _recorded_download(
        row,
        "receipt_downloaded",
        (pdf, "application/pdf", receipts.receipt_filename(donation)),
        target=f"donation:{donation.id}",
    )


@bp.get("/statements/<int:year>.pdf")
@signed_in
def statement_pdf(row: ManageSession, year: int) -> ResponseReturnValue:
    # Only a year with gifts: any other number (9999999) is not a year we state.
    if year not in statements.statement_years(row.supporter):
        abort(404)
    found = statements.statement(row.supporter, year)
    if found is None:
        abort(404)
    pdf = statements.statement_pdf(found, _locale())
    return _recorded_download(
        row,
        "statement_downloaded",
        (pdf, "application/pdf", statements.statement_filename(found)),
        target=f"statement:{year}",
    )


# -- email choices and reminders ------------------------------------------------------------


def _to_emails() -> ResponseReturnValue:
    return redirect(url_for("manage.account") + "#emails", 303)


def _email_choice(
    row: ManageSession,
    field: str,
    choose: Callable[[ManageSession, bool, str], bool],
    said: tuple[str, str],
) -> ResponseReturnValue:
    """A yes/no choice of the account's email section; ``said``: what a change to yes,
    or to no, is told with (nothing when the choice was already so)."""
    wanted = request.form.get(field)
    if not ActionForm().validate() or wanted not in ("yes", "no"):
        flash(_("Nothing was changed. Please try again."))
        return _to_emails()
    if choose(row, wanted == "yes", _locale()):
        flash(said[0] if wanted == "yes" else said[1])
    commit()
    return _to_emails()


@bp.post("/emails/newsletter")
@signed_in
def newsletter(row: ManageSession) -> ResponseReturnValue:
    return _email_choice(
        row,
        "subscribe",
        choices.set_newsletter,
        (_("You will receive the newsletter."), _("You will no longer receive the newsletter.")),
    )


@bp.post("/emails/reminders")
@signed_in
def reminder_emails(row: ManageSession) -> ResponseReturnValue:
    return _email_choice(
        row,
        "allow",
        choices.set_reminder_emails,
        (
            _("We will send the reminders you ask for again."),
            _("We will send you no more reminders."),
        ),
    )


@bp.post("/reminders/<int:reminder_id>/cancel")
@signed_in
def cancel_reminder(row: ManageSession, reminder_id: int) -> ResponseReturnValue:
    reminder = own_reminder(row.supporter, reminder_id)
    if reminder is None:
        abort(404)
    form = ActionForm()
    if form.validate() and choices.cancel_reminder(row, reminder):
        flash(_("The reminder is cancelled."))
    commit()
    return _to_emails()


# -- email address ----------------------------------------------------------------------------


@bp.post("/email")
@limiter.limit(services.sign_in_ip_limit, methods=["POST"])
@signed_in
def change_email(row: ManageSession) -> ResponseReturnValue:
    form = EmailChangeForm()
    if not form.validate():
        return _render_account(row, form, 400)
    new_email = (form.email.data or "").strip()
    change = email_change.request_change(row, new_email, _locale())
    commit()
    if change is None:
        flash(_("That is already your address."))
    else:
        flash(
            _(
                "We have sent a link to %(email)s. Your address changes when you open it there.",
                email=new_email,
            )
        )
    return redirect(url_for("manage.account") + "#email-address", 303)


@bp.get("/email/confirm/<token>")
def confirm_email(token: str) -> ResponseReturnValue:
    change = email_change.open_change(token)
    if change is None:
        return _invalid_link()
    return _link_page("manage/email_confirm.html", token, change.new_email)


@bp.post("/email/confirm/<token>")
def confirm_email_post(token: str) -> ResponseReturnValue:
    change = email_change.open_change(token)
    if change is None:
        return _invalid_link()
    form = ActionForm()
    if not form.validate():
        return _link_page("manage/email_confirm.html", token, change.new_email, form)
    supporter = change.supporter
    outcome = email_change.confirm_change(change, _locale())
    commit()
    if outcome is email_change.ChangeOutcome.TAKEN:
        return render_template("manage/email_taken.html", email=change.new_email), 409
    session.pop(SESSION_KEY, None)
    flash(_("Your email address is now %(email)s.", email=supporter.email))
    # The click proved the new address: this browser is signed in with it.
    return _start(supporter, "email_change_link")


# -- your data --------------------------------------------------------------------------------


@bp.get("/data.json")
@signed_in
def data_json(row: ManageSession) -> ResponseReturnValue:
    import json

    data = export.export_data(row.supporter)
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    name = f"my-support-{row.supporter_id}.json"
    return _recorded_download(row, "data_exported", (body, "application/json", name), format="json")


@bp.get("/gifts.csv")
@signed_in
def gifts_csv(row: ManageSession) -> ResponseReturnValue:
    body = export.gifts_csv(row.supporter)
    name = f"my-gifts-{row.supporter_id}.csv"
    return _recorded_download(
        row, "data_exported", (body, "text/csv; charset=utf-8", name), format="csv"
    )


@bp.get("/erase")
@signed_in
def erase_page(row: ManageSession) -> ResponseReturnValue:
    supporter = row.supporter
    return render_template(
        "manage/erase.html",
        form=ActionForm(),
        charging=erasure.charging_plans(supporter),
        pending=erasure.pending_request(supporter),
    )


@bp.post("/erase")
@signed_in
def erase(row: ManageSession) -> ResponseReturnValue:
    form = ActionForm()
    supporter = row.supporter
    if not form.validate() or request.form.get("confirm") != "yes":
        flash(_("Tick the box to confirm that you want your data erased."))
        return redirect(url_for("manage.erase_page"), 303)
    request_row = erasure.request_erasure(supporter, source=row.source)
    commit()
    if request_row.status is ErasureStatus.APPLIED:
        session.pop(SESSION_KEY, None)
        return render_template("manage/erased.html")
    return redirect(url_for("manage.erase_page"), 303)


@bp.post("/erase/withdraw")
@signed_in
def withdraw_erasure(row: ManageSession) -> ResponseReturnValue:
    pending = erasure.pending_request(row.supporter)
    if ActionForm().validate() and pending is not None:
        erasure.withdraw_request(pending, source=row.source)
        commit()
        flash(_("Your erasure request is withdrawn."))
    return redirect(url_for("manage.account"), 303)
