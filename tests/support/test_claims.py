"""An email address typed into a public form is a claim (DESIGN.md 2.5, issue 11 item 1).

An existing supporter's record is neither shown nor changed by anyone who
types their address -- on the checkout pages, the payment page, the
thank-you page or the reminder form -- until a payment with it succeeds
(in the simulator) or its owner clicks a link sent to it.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from donations.db import db
from donations.supporters.consents import WORDINGS, wording_version
from donations.supporters.models import (
    Consent,
    ConsentStatus,
    ConsentTopic,
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)
from tests.payments.stripe_flows import deliver, give, stale
from tests.reminders.test_views import signup_form
from tests.support.test_checkout import client_secret_of, details_form

OWNER = "owner@example.org"


def owner_profile() -> tuple[str, str | None, str, bool]:
    db.session.expire_all()
    supporter = db.session.scalar(select(Supporter).where(Supporter.email_key == OWNER))
    assert supporter is not None
    return supporter.name, supporter.country, supporter.locale, supporter.newsletter_opt_in


def existing_owner(client, simulator) -> tuple[str, str | None, str, bool]:
    """The owner has given once, as "Ada Reader" from GB (tests.payments.stripe_flows)."""
    give(client, simulator, email=OWNER)
    profile = owner_profile()
    assert profile == ("Ada Reader", "GB", "en", False)
    return profile


def strangers_checkout(client, frequency: str = "once", **fields: str):
    form = details_form(client, frequency=frequency)
    form.update({"email": "OWNER@example.org", "name": "", "country": "", "newsletter": "y"})
    form.update(fields)
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    return started.headers["Location"]


def assert_nothing_of_the_owner_in(page: str) -> None:
    assert "Ada Reader" not in page
    assert "Ada" not in page
    assert "owner@example.org" not in page  # only what the stranger typed: OWNER@example.org


@pytest.mark.parametrize("frequency", ["once", "monthly"])
def test_an_unpaid_checkout_shows_and_changes_nothing_of_the_owner(
    client, ctx, simulator, frequency
) -> None:
    before = existing_owner(client, simulator)
    pay_url = strangers_checkout(client, frequency)
    pay = client.get(pay_url)
    assert pay.status_code == 200
    assert 'data-name=""' in pay.text
    assert 'data-email="OWNER@example.org"' in pay.text
    assert_nothing_of_the_owner_in(pay.text)
    # The thank-you page of an unpaid checkout sends the stranger back to pay.
    thanks = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert thanks.status_code == 303
    assert_nothing_of_the_owner_in(client.get(thanks.headers["Location"]).text)

    assert owner_profile() == before
    checkout: Donation | RecurringPlan | None = db.session.scalar(
        select(Donation if frequency == "once" else RecurringPlan).where(
            (Donation if frequency == "once" else RecurringPlan).details_applied_at.is_(None)
        )
    )
    assert checkout is not None
    # The checkout keeps what it was given, and only that.
    assert (checkout.donor_email, checkout.donor_name, checkout.donor_country) == (
        "OWNER@example.org",
        None,
        None,
    )
    consent = db.session.scalar(select(Consent))
    assert consent is not None
    assert (consent.topic, consent.granted, consent.status, consent.source) == (
        ConsentTopic.NEWSLETTER,
        True,
        ConsentStatus.PENDING,
        "checkout",
    )
    assert consent.wording_version == wording_version(ConsentTopic.NEWSLETTER)


def test_a_declined_payment_changes_nothing(client, ctx, simulator) -> None:
    before = existing_owner(client, simulator)
    pay_url = strangers_checkout(client, name="Mallory", country="US")
    secret = client_secret_of(client.get(pay_url).text)
    simulator.confirm(secret, card="4000000000000002")
    page = client.get(pay_url)
    assert "Mallory" in page.text  # the stranger's own snapshot, shown back to them
    assert_nothing_of_the_owner_in(page.text)
    donation = db.session.scalar(select(Donation).where(Donation.donor_name == "Mallory"))
    assert donation is not None
    assert donation.status is DonationStatus.FAILED
    assert owner_profile() == before


def test_a_successful_payment_applies_what_was_given(client, ctx, simulator, mailbox) -> None:
    existing_owner(client, simulator)
    pay_url = strangers_checkout(client, name="Ada Lovelace", country="FR")
    assert simulator.confirm(client_secret_of(client.get(pay_url).text)).json()["status"] == (
        "succeeded"
    )
    assert client.get(pay_url.replace("/pay/", "/thanks/")).status_code == 200
    assert owner_profile() == ("Ada Lovelace", "FR", "en", True)
    consent = db.session.scalar(select(Consent))
    assert consent is not None
    assert (consent.status, consent.proof) == (ConsentStatus.APPLIED, "payment")
    assert consent.applied_at is not None


def test_an_empty_name_keeps_the_stored_one_after_payment(client, ctx, simulator) -> None:
    existing_owner(client, simulator)
    pay_url = strangers_checkout(client)
    simulator.confirm(client_secret_of(client.get(pay_url).text))
    thanks = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert thanks.status_code == 200
    assert_nothing_of_the_owner_in(thanks.text)
    name, country, _, newsletter = owner_profile()
    assert (name, country, newsletter) == ("Ada Reader", "GB", True)


def test_the_webhook_applies_the_details_without_the_thank_you_page(
    client, ctx, simulator
) -> None:
    existing_owner(client, simulator)
    pay_url = strangers_checkout(client, name="Paid By Webhook", country="DE")
    secret = client_secret_of(client.get(pay_url).text)
    simulator.confirm(secret)
    assert owner_profile()[0] == "Ada Reader"  # paid, but the ledger has not heard yet
    intent_id = secret.split("_secret_")[0]
    assert deliver(client, "payment_intent.succeeded", stale(intent_id, "payment_intent")) == 200
    assert owner_profile()[:2] == ("Paid By Webhook", "DE")


def test_a_plan_applies_its_details_with_its_first_payment(client, ctx, simulator) -> None:
    before = existing_owner(client, simulator)
    pay_url = strangers_checkout(client, "monthly", name="Monthly Ada", country="IT")
    secret = client_secret_of(client.get(pay_url).text)
    assert owner_profile() == before
    assert simulator.confirm_setup(secret).json()["status"] == "succeeded"
    assert client.get(pay_url.replace("/pay/", "/thanks/")).status_code == 200
    plan = db.session.scalar(select(RecurringPlan))
    assert plan is not None
    assert plan.status is PlanStatus.ACTIVE
    assert plan.details_applied_at is not None
    assert owner_profile() == ("Monthly Ada", "IT", "en", True)
    # A renewal is the same plan again: it does not bring the details back.
    supporter = plan.supporter
    supporter.name = "Changed Since"
    db.session.commit()
    simulator.renew(str(plan.stripe_subscription_id))
    client.get(pay_url.replace("/pay/", "/thanks/"))
    db.session.expire_all()
    paid = [d for d in plan.donations if d.status is DonationStatus.SUCCEEDED]
    assert len(paid) == 2
    assert owner_profile()[0] == "Changed Since"


def test_a_new_address_is_stored_bare_until_it_pays(client, ctx, simulator) -> None:
    form = details_form(client)
    form.update(email="new@example.org", name="New Reader", country="GB", newsletter="y")
    pay_url = client.post("/support/checkout", data=form).headers["Location"]
    supporter = db.session.scalar(select(Supporter))
    assert supporter is not None
    assert (supporter.name, supporter.country, supporter.newsletter_opt_in) == ("", None, False)
    assert 'data-name="New Reader"' in client.get(pay_url).text
    simulator.confirm(client_secret_of(client.get(pay_url).text))
    client.get(pay_url.replace("/pay/", "/thanks/"))
    db.session.expire_all()
    assert (supporter.name, supporter.country, supporter.newsletter_opt_in) == (
        "New Reader",
        "GB",
        True,
    )


def test_the_reminder_form_shows_and_changes_nothing_of_the_owner(
    client, ctx, simulator, mailbox
) -> None:
    before = existing_owner(client, simulator)
    form = signup_form(client, email="OWNER@example.org")
    done = client.post("/reminders/new?lang=ru", data=form, follow_redirects=True)
    assert done.status_code == 200
    assert "OWNER@example.org" in done.text
    assert_nothing_of_the_owner_in(done.text)
    assert owner_profile() == before


def test_the_consent_wording_is_the_one_the_form_shows(app) -> None:
    from donations.support.forms import DetailsForm

    with app.test_request_context("/"):
        assert str(DetailsForm.newsletter.args[0]) == WORDINGS[ConsentTopic.NEWSLETTER]
    assert re.fullmatch(r"newsletter-[0-9a-f]{12}", wording_version(ConsentTopic.NEWSLETTER))
