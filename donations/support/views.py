"""The ask (/support), the checkout, the thank-you page and payment-method updates."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from donations.ask.config import AskConfig
from donations.ask.services import load_ask_config
from donations.db import commit, db, utcnow
from donations.extensions import limiter
from donations.mail.addresses import normalise_address
from donations.money import InvalidAmount, Money
from donations.payments.gateway import GatewayError
from donations.public import public_response
from donations.reminders.services import external_url, reminder_from_link
from donations.support import fraud
from donations.support.campaigns import meter_text, running_meter
from donations.support.forms import ChooseGiftForm, DetailsForm
from donations.support.services import (
    CheckoutConflict,
    CheckoutRequest,
    checkout_methods,
    find_checkout,
    method_types,
    open_setup_for_retry,
    plan_from_link,
    start_checkout,
    start_recurring_checkout,
    subscribe,
    sync_donation,
)
from donations.support.supporter_mark import article_return_url
from donations.supporters.attribution import Attribution, clean_url
from donations.supporters.models import (
    Donation,
    DonationStatus,
    Frequency,
    PlanStatus,
    RecurringPlan,
)

bp = Blueprint("support", __name__)


def _locale() -> str:
    return str(get_locale() or "en")


def _checkout_limit() -> str:
    return str(current_app.config["SETTINGS"].checkout_rate_limit)


def _email_key() -> str:
    return normalise_address(request.form.get("email") or "")[:254] or get_remote_address()


def _prefill(config: AskConfig) -> dict[str, str]:
    """Values for the ask from the query string; anything invalid is ignored."""
    args = request.args
    frequency = args.get("frequency", "")
    if frequency not in {f.value for f in Frequency}:
        frequency = config.default_frequency.value
    currency = args.get("currency", "").upper()
    if currency not in config.currencies:
        currency = config.currency_for(list(request.accept_languages.values()))
    rule = config.rule(currency, Frequency(frequency))
    amount = ""
    if rule is not None:
        with contextlib.suppress(InvalidAmount):
            wanted = Money.from_major(args.get("amount", "")[:20], currency).amount
            if rule.minimum <= wanted <= rule.maximum:
                amount = Money(wanted, currency).major_text()
        if not amount:
            amount = Money(rule.default, currency).major_text()
    return {"frequency": frequency, "currency": currency, "amount": amount}


def _upsell_answer(value: str | None) -> str | None:
    """The reader's answer to the embed's once-to-monthly offer, if it made one."""
    return value if value in ("accepted", "declined") else None


def _attribution_args() -> dict[str, str]:
    """Article, campaign, variant and source from the query, carried on by the ask's links."""
    args = Attribution.from_args(request.args).as_args()
    source = clean_url(request.args.get("source"))
    return args | {"source": source} if source else args


def _render_ask(
    config: AskConfig, values: dict[str, str], errors: dict[str, list[str]], status: int = 200
) -> ResponseReturnValue:
    return (
        render_template(
            "support/ask.html",
            config=config,
            values=values,
            errors=errors,
            frequencies=list(Frequency),
            locale=_locale(),
            attribution=_attribution_args(),
        ),
        status,
    )


@bp.get("/support")
def ask() -> ResponseReturnValue:
    # The busiest page: the same for every reader without a cookie, per URL,
    # language and settings, so it is built once and cacheable (donations.public).
    config = load_ask_config()
    meter = running_meter()

    def render() -> str:
        return render_template(
            "support/ask.html",
            config=config,
            values=_prefill(config),
            errors={},
            frequencies=list(Frequency),
            locale=_locale(),
            attribution=_attribution_args(),
            meter=meter,
            meter_text=meter_text(meter, _locale()) if meter else "",
        )

    return public_response(f"{config.fingerprint}:{meter!r}", render)


@bp.get("/support/checkout")
def details() -> ResponseReturnValue:
    config = load_ask_config()
    form = ChooseGiftForm(request.args)
    typed = (request.args.get("custom_amount") or "").strip()[:30]
    values = {
        "frequency": (request.args.get("frequency") or "")[:10],
        "currency": (request.args.get("currency") or "")[:3].upper(),
        "amount": typed or (request.args.get("amount") or "")[:20],
    }
    form.amount.data = values["amount"]
    # A typed amount is read as the reader's locale writes numbers; presets
    # and links carry plain major units.
    if not form.validate_with(config, _locale() if typed else None) or form.gift is None:
        errors = form.gift_errors()
        fallback = _prefill(config)
        return _render_ask(config, {k: v or fallback[k] for k, v in values.items()}, errors, 400)
    details_form = DetailsForm(
        formdata=None,
        frequency=values["frequency"],
        currency=form.gift.currency,
        amount=form.gift.major_text(),
        attempt=uuid.uuid4().hex,
        reminder=(request.args.get("reminder") or "")[:300],
        source=clean_url(request.args.get("source")) or "",
        upsell=_upsell_answer(request.args.get("upsell")) or "",
        **Attribution.from_args(request.args).as_args(),
    )
    return _render_details(details_form, config)


def _render_details(
    form: DetailsForm, config: AskConfig, status: int = 200, message: str | None = None
) -> ResponseReturnValue:
    gift = None
    with contextlib.suppress(InvalidAmount):
        gift = Money.from_major(form.amount.data or "", form.currency.data or "")
    frequency = form.frequency.data if form.frequency.data in {f.value for f in Frequency} else None
    methods = method_types(gift.currency, Frequency(frequency)) if gift and frequency else []
    return (
        render_template(
            "support/details.html",
            form=form,
            gift=gift,
            # What covering the fee adds, per method offered (shown before paying).
            covers=config.fee_covers(gift, Frequency(frequency)) if gift and frequency else {},
            methods=methods,
            locale=_locale(),
            frequency=frequency,
            message=message,
        ),
        status,
    )


@bp.post("/support/checkout")
@limiter.limit(_checkout_limit, methods=["POST"])
@limiter.limit(_checkout_limit, methods=["POST"], key_func=_email_key, scope="checkout-email")
def start() -> ResponseReturnValue:
    config = load_ask_config()
    form = DetailsForm()
    if fraud.blocked(get_remote_address()):
        return _render_details(
            form, config, 429, _("Too many declined payments. Please try again later.")
        )
    if not form.validate_with(config) or form.gift is None:
        return _render_details(form, config, 400)
    if form.website.data:
        # The honeypot was filled in: a bot. Say no more than a person would see.
        return _render_details(form, config, 400, _("This form has expired. Please start again."))
    frequency = Frequency(form.frequency.data)
    checkout_request = _checkout_request(form, config, form.gift, frequency)
    try:
        if frequency is Frequency.ONCE:
            checkout: Donation | RecurringPlan = start_checkout(checkout_request)
        else:
            checkout = start_recurring_checkout(checkout_request)
    except CheckoutConflict:
        db.session.rollback()
        return _render_details(form, config, 409, _("This form has expired. Please start again."))
    except GatewayError:
        db.session.rollback()
        current_app.logger.exception("could not start checkout")
        return _render_details(
            form,
            config,
            503,
            _("We could not reach our payment provider. Please try again in a moment."),
        )
    commit()
    return redirect(url_for("support.pay", token=checkout.public_token), 303)


def _checkout_request(
    form: DetailsForm, config: AskConfig, gift: Money, frequency: Frequency
) -> CheckoutRequest:
    """What the valid details form asks for, with the fee cover and attribution worked out."""
    # The server works the cover out (the page only says whether, and for which method).
    covers = config.fee_covers(gift, frequency) if form.cover_fee.data else {}
    cover_method = form.cover_method.data if form.cover_method.data in covers else None
    cover_method = cover_method or next(iter(covers), None)
    fee_cover = covers[cover_method].amount if cover_method else 0
    # Came through a "Remind me later" email: the gift records it (conversion).
    reminder = reminder_from_link(form.reminder.data)
    # Where the reader was asked; a gift through a reminder inherits the reminder's.
    attribution = Attribution.from_args(
        {"article": form.article.data, "campaign": form.campaign.data, "variant": form.variant.data}
    )
    if reminder is not None and not attribution.as_args():
        attribution = Attribution(reminder.article, reminder.campaign, reminder.variant)
    source = clean_url(form.source.data) or (reminder.source if reminder else None)
    return CheckoutRequest(
        gift=gift,
        frequency=frequency,
        attempt_key=form.attempt.data,
        email=form.email.data,
        name=(form.name.data or "").strip(),
        country=form.country.data or None,
        newsletter_opt_in=bool(form.newsletter.data),
        locale=_locale(),
        fee_cover=fee_cover,
        fee_cover_method=cover_method,
        campaign=attribution.campaign,
        article=attribution.article,
        variant=attribution.variant,
        upsell=_upsell_answer(form.upsell.data),
        source=source,
        reminder_id=reminder.id if reminder else None,
    )


def _checkout_or_404(token: str) -> Donation | RecurringPlan:
    found = find_checkout(token)
    if found is None:
        abort(404)
    return found


def _checking(checkout: Donation | RecurringPlan) -> ResponseReturnValue:
    db.session.rollback()
    return render_template("support/checking.html", checkout=checkout, locale=_locale()), 503


def _pay_page(
    checkout: Donation | RecurringPlan, mode: str, client_secret: str | None, failed: bool
) -> ResponseReturnValue:
    settings = current_app.config["SETTINGS"]
    token = checkout.public_token
    return render_template(
        "support/pay.html",
        checkout=checkout,
        mode=mode,
        client_secret=client_secret,
        publishable_key=settings.stripe_publishable_key,
        # From BASE_URL: the Host header is the reader's to choose.
        return_url=external_url("support.thanks", token=token),
        declined_url=url_for("support.declined", token=token),
        failed=failed,
        methods=[] if mode == "authenticate" else checkout_methods(checkout),
        locale=_locale(),
    )


@bp.get("/support/pay/<token>")
@limiter.limit(_checkout_limit)
def pay(token: str) -> ResponseReturnValue:
    checkout = _checkout_or_404(token)
    if isinstance(checkout, RecurringPlan):
        return _pay_plan(checkout)
    try:
        snapshot = sync_donation(checkout)
    except GatewayError:
        return _checking(checkout)
    commit()
    if checkout.status in (DonationStatus.SUCCEEDED, DonationStatus.PROCESSING):
        return redirect(url_for("support.thanks", token=token), 303)
    if checkout.status is DonationStatus.CANCELED or snapshot is None:
        return render_template("support/expired.html", locale=_locale()), 410
    return _pay_page(
        checkout, "payment", snapshot.client_secret, failed=checkout.status is DonationStatus.FAILED
    )


def _pay_plan(plan: RecurringPlan) -> ResponseReturnValue:
    try:
        progress = subscribe(plan)
        if progress.state == "failed":
            # The first payment failed: collect another method for a retry.
            setup = open_setup_for_retry(plan, "retry")
            progress = type(progress)("collect", setup.client_secret)
            failed = True
        else:
            failed = False
    except GatewayError:
        return _checking(plan)
    commit()
    match progress.state:
        case "active" | "processing":
            return redirect(url_for("support.thanks", token=plan.public_token), 303)
        case "ended":
            return render_template("support/expired.html", locale=_locale()), 410
        case "authenticate":
            return _pay_page(plan, "authenticate", progress.client_secret, failed=False)
        case _:
            return _pay_page(plan, "setup", progress.client_secret, failed=failed)


@bp.post("/support/pay/<token>/declined")
@limiter.limit(_checkout_limit)
def declined(token: str) -> ResponseReturnValue:
    """The page reports a decline; the server checks with Stripe before counting it."""
    checkout = _checkout_or_404(token)
    if isinstance(checkout, Donation):
        try:
            sync_donation(checkout)
        except GatewayError:
            return _checking(checkout)
        commit()
        if checkout.status is DonationStatus.FAILED:
            fraud.record_decline(get_remote_address())
    else:
        fraud.record_decline(get_remote_address())
    return jsonify(blocked=fraud.blocked(get_remote_address()))


def _thanks_page_expired(checkout: Donation | RecurringPlan) -> bool:
    """A thank-you link shows what was given for THANKS_PAGE_DAYS, then no more:
    it travels in browser histories and forwarded emails."""
    created = checkout.created_at
    if created.tzinfo is None:  # SQLite returns naive UTC
        created = created.replace(tzinfo=UTC)
    days = current_app.config["SETTINGS"].thanks_page_days
    return utcnow() - created > timedelta(days=days)


@bp.get("/support/thanks/<token>")
@limiter.limit(_checkout_limit)
def thanks(token: str) -> ResponseReturnValue:
    checkout = _checkout_or_404(token)
    if _thanks_page_expired(checkout):
        return render_template("support/expired.html", thanks_expired=True, locale=_locale()), 410
    if isinstance(checkout, RecurringPlan):
        try:
            progress = subscribe(checkout)
        except GatewayError:
            return _checking(checkout)
        commit()
        if progress.state in ("collect", "authenticate", "failed"):
            return redirect(url_for("support.pay", token=token), 303)
        if progress.state == "ended":
            return render_template("support/expired.html", locale=_locale()), 410
        first = next((d for d in sorted(checkout.donations, key=lambda d: d.id)), None)
        return render_template(
            "support/thanks_plan.html",
            plan=checkout,
            first=first,
            processing=progress.state == "processing",
            locale=_locale(),
            back_url=article_return_url(checkout.source),
        )
    try:
        sync_donation(checkout)
    except GatewayError:
        return _checking(checkout)
    commit()
    if checkout.status in (DonationStatus.PENDING, DonationStatus.FAILED):
        return redirect(url_for("support.pay", token=token), 303)
    if checkout.status is DonationStatus.CANCELED:
        return render_template("support/expired.html", locale=_locale()), 410
    return render_template(
        "support/thanks.html",
        donation=checkout,
        locale=_locale(),
        back_url=article_return_url(checkout.source),
    )


@bp.get("/support/plan/<link>/payment-method")
@limiter.limit(_checkout_limit)
def update_method(link: str) -> ResponseReturnValue:
    """From a failed-payment email: give a new payment method, then Stripe retries."""
    plan = plan_from_link(link)
    if plan is None:
        return render_template("support/link_invalid.html", locale=_locale()), 404
    if plan.status in (PlanStatus.CANCELED, PlanStatus.INCOMPLETE_EXPIRED):
        return render_template("support/expired.html", locale=_locale()), 410
    try:
        setup = open_setup_for_retry(plan, "update")
    except GatewayError:
        return _checking(plan)
    commit()
    return _pay_page(plan, "setup", setup.client_secret, failed=plan.status is PlanStatus.PAST_DUE)


def _newsroom_page(template: str, own_url: str | None) -> ResponseReturnValue:
    """A built-in page about the newsroom: the same for every reader of a language.

    Where the newsroom has its own page, ours sends readers (and old links) there.
    """
    if own_url:
        return redirect(own_url, 302)
    newsroom = current_app.config["SETTINGS"].newsroom
    return public_response(
        f"newsroom:{newsroom!r}",
        lambda: render_template(template, newsroom=newsroom, locale=_locale()),
    )


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    """The built-in privacy policy (PRIVACY_POLICY_URL points readers elsewhere)."""
    newsroom = current_app.config["SETTINGS"].newsroom
    return _newsroom_page("support/privacy.html", newsroom.privacy_policy_url)


@bp.get("/imprint")
def imprint() -> ResponseReturnValue:
    """The built-in imprint and terms of giving (IMPRINT_URL points readers elsewhere)."""
    newsroom = current_app.config["SETTINGS"].newsroom
    return _newsroom_page("support/imprint.html", newsroom.imprint_url)


@bp.after_request
def _no_store_payment_pages(response: Response) -> Response:
    """The payment and thank-you pages show live payment state: never from a cache.

    Otherwise the Back button after paying shows the card form again, from the
    browser's cache, for a gift that is already paid.
    """
    if request.endpoint in ("support.pay", "support.thanks"):
        response.headers["Cache-Control"] = "no-store"
    return response
