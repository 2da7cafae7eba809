"""The ask (/support), the checkout and the thank-you page."""

from __future__ import annotations

import contextlib
import uuid

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _

from donations.db import commit, db
from donations.extensions import limiter
from donations.money import InvalidAmount, Money
from donations.payments.gateway import GatewayError
from donations.support.ask import AskConfig
from donations.support.forms import ChooseGiftForm, DetailsForm
from donations.support.services import (
    CheckoutConflict,
    find_donation,
    load_ask_config,
    start_checkout,
    sync_donation,
)
from donations.supporters.models import Donation, DonationStatus, Frequency

bp = Blueprint("support", __name__)


def _locale() -> str:
    return str(get_locale() or "en")


def _checkout_limit() -> str:
    return str(current_app.config["SETTINGS"].checkout_rate_limit)


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
        try:
            wanted = Money.from_major(args.get("amount", "")[:20], currency).amount
            if rule.minimum <= wanted <= rule.maximum:
                amount = Money(wanted, currency).major_text()
        except InvalidAmount:
            pass
        if not amount:
            amount = Money(rule.default, currency).major_text()
    return {"frequency": frequency, "currency": currency, "amount": amount}


def _render_ask(
    config: AskConfig, values: dict[str, str], errors: list[str], status: int = 200
) -> ResponseReturnValue:
    return (
        render_template(
            "support/ask.html",
            config=config,
            values=values,
            errors=errors,
            frequencies=list(Frequency),
            locale=_locale(),
        ),
        status,
    )


@bp.get("/support")
def ask() -> ResponseReturnValue:
    config = load_ask_config()
    return _render_ask(config, _prefill(config), [])


@bp.get("/support/checkout")
def details() -> ResponseReturnValue:
    config = load_ask_config()
    form = ChooseGiftForm(request.args)
    values = {
        "frequency": (request.args.get("frequency") or "")[:10],
        "currency": (request.args.get("currency") or "")[:3].upper(),
        "amount": (
            (request.args.get("custom_amount") or "").strip() or request.args.get("amount") or ""
        )[:20],
    }
    form.amount.data = values["amount"]
    if not form.validate_with(config):
        errors = [e for field in form for e in field.errors]
        fallback = _prefill(config)
        return _render_ask(config, {k: v or fallback[k] for k, v in values.items()}, errors, 400)
    details_form = DetailsForm(
        formdata=None,
        frequency=values["frequency"],
        currency=form.gift.currency if form.gift else "",
        amount=form.gift.major_text() if form.gift else "",
        attempt=uuid.uuid4().hex,
    )
    return _render_details(details_form, config)


def _render_details(
    form: DetailsForm, config: AskConfig, status: int = 200, message: str | None = None
) -> ResponseReturnValue:
    gift = None
    with contextlib.suppress(InvalidAmount):
        gift = Money.from_major(form.amount.data or "", form.currency.data or "")
    return (
        render_template(
            "support/details.html",
            form=form,
            gift=gift,
            locale=_locale(),
            frequency=form.frequency.data,
            message=message,
        ),
        status,
    )


@bp.post("/support/checkout")
@limiter.limit(_checkout_limit, methods=["POST"])
def start() -> ResponseReturnValue:
    config = load_ask_config()
    form = DetailsForm()
    if not form.validate_with(config) or form.gift is None:
        return _render_details(form, config, 400)
    frequency = Frequency(form.frequency.data)
    if frequency is not Frequency.ONCE:
        form.frequency.errors = [
            _("Monthly and annual support will open soon; please give once for now.")
        ]
        return _render_details(form, config, 400)
    try:
        donation = start_checkout(
            gift=form.gift,
            frequency=frequency,
            attempt_key=form.attempt.data,
            email=form.email.data,
            name=(form.name.data or "").strip(),
            country=form.country.data or None,
            newsletter_opt_in=bool(form.newsletter.data),
            locale=_locale(),
            campaign=(request.args.get("campaign") or "")[:100] or None,
            source=(request.referrer or "")[:500] or None,
        )
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
    return redirect(url_for("support.pay", token=donation.public_token), 303)


def _donation_or_404(token: str) -> Donation:
    donation = find_donation(token)
    if donation is None:
        abort(404)
    return donation


@bp.get("/support/pay/<token>")
def pay(token: str) -> ResponseReturnValue:
    donation = _donation_or_404(token)
    try:
        snapshot = sync_donation(donation)
    except GatewayError:
        db.session.rollback()
        return render_template("support/checking.html", donation=donation, locale=_locale()), 503
    commit()
    if donation.status in (DonationStatus.SUCCEEDED, DonationStatus.PROCESSING):
        return redirect(url_for("support.thanks", token=token), 303)
    if donation.status is DonationStatus.CANCELED or snapshot is None:
        return render_template("support/expired.html", locale=_locale()), 410
    settings = current_app.config["SETTINGS"]
    return render_template(
        "support/pay.html",
        donation=donation,
        client_secret=snapshot.client_secret,
        publishable_key=settings.stripe_publishable_key,
        return_url=url_for("support.thanks", token=token, _external=True),
        failed=donation.status is DonationStatus.FAILED,
        locale=_locale(),
    )


@bp.get("/support/thanks/<token>")
def thanks(token: str) -> ResponseReturnValue:
    donation = _donation_or_404(token)
    try:
        sync_donation(donation)
    except GatewayError:
        db.session.rollback()
        return render_template("support/checking.html", donation=donation, locale=_locale()), 503
    commit()
    if donation.status in (DonationStatus.PENDING, DonationStatus.FAILED):
        return redirect(url_for("support.pay", token=token), 303)
    if donation.status is DonationStatus.CANCELED:
        return render_template("support/expired.html", locale=_locale()), 410
    return render_template("support/thanks.html", donation=donation, locale=_locale())


@bp.after_request
def _no_store_payment_pages(response: Response) -> Response:
    """The payment and thank-you pages show live payment state: never from a cache.

    Otherwise the Back button after paying shows the card form again, from the
    browser's cache, for a gift that is already paid.
    """
    if request.endpoint in ("support.pay", "support.thanks"):
        response.headers["Cache-Control"] = "no-store"
    return response
