"""The back office's language: the staff member's own choice, never the reader-side cookie."""

from __future__ import annotations

from donations.db import commit
from donations.money import Money
from donations.staff.models import Role
from donations.staff.services import audit
from tests import factories
from tests.staff.conftest import csrf_token


def _supporter_with_a_card_gift(app) -> int:
    with app.app_context():
        owner = factories.supporter()
        factories.donation(
            owner, 123456, "USD", method="card", card_brand="visa", card_last4="4242"
        )
        commit()
        return owner.id


def test_the_back_office_is_english_whatever_the_browser_says(app, signed_in) -> None:
    supporter_id = _supporter_with_a_card_gift(app)
    client, _ = signed_in(Role.ADMIN)
    client.get("/support?lang=ru")  # a reader-side choice in the same browser
    page = client.get(
        f"/staff/supporters/{supporter_id}", headers={"Accept-Language": "ru-RU,ru"}
    ).text
    assert "$1,234.56" in page
    assert "Visa •••• 4242" in page
    assert "1 234,56" not in page.replace("\u00a0", " ").replace("\u202f", " ")
    assert "дек." not in page
    assert "г." not in page


def test_each_staff_member_chooses_their_language(app, signed_in) -> None:
    supporter_id = _supporter_with_a_card_gift(app)
    client, staff = signed_in(Role.FINANCE)
    account = client.get("/staff/account")
    assert account.status_code == 200
    assert '<option value="en" lang="en" selected>English</option>' in account.text
    saved = client.post(
        "/staff/account", data={"csrf_token": csrf_token(account.text), "locale": "ru"}
    )
    assert saved.status_code == 302
    assert saved.headers["Location"] == "/staff/account"
    page = client.get(f"/staff/supporters/{supporter_id}").text
    normal = page.replace("\u00a0", " ").replace("\u202f", " ")
    assert "1 234,56 $" in normal
    assert "Visa •••• 4242" in page
    # Someone else's choice is theirs alone.
    other, _ = signed_in(Role.ADMIN)
    assert "$1,234.56" in other.get(f"/staff/supporters/{supporter_id}").text
    # Nonsense is refused at the field, not stored.
    bad = client.post(
        "/staff/account",
        data={"csrf_token": csrf_token(client.get("/staff/account").text), "locale": "xx"},
    )
    assert bad.status_code == 400
    assert 'aria-describedby="locale-errors"' in bad.text
    with app.app_context():
        from donations.db import db
        from donations.staff.models import AuditEntry, StaffUser

        assert db.session.get(StaffUser, staff.id).locale == "ru"
        entry = db.session.query(AuditEntry).filter_by(action="staff.locale_changed").one()
        assert entry.details == {"before": "en", "after": "ru"}


def test_a_russian_staff_member_refunds_in_their_own_numbers(app, signed_in) -> None:
    with app.app_context():
        owner = factories.supporter()
        gift = factories.donation(owner, 5000, "EUR", stripe_payment_intent_id="pi_locale")
        commit()
        gift_id = gift.id
    client, staff = signed_in(Role.FINANCE)
    with app.app_context():
        from donations.db import db
        from donations.staff.models import StaffUser

        db.session.get(StaffUser, staff.id).locale = "ru"
        commit()
    form = client.get(f"/staff/donations/{gift_id}/refund")
    answer = client.post(
        f"/staff/donations/{gift_id}/refund",
        data={"csrf_token": csrf_token(form.text), "amount": "12,50"},
    )
    # Read as Russian writes it: 12,50 €, offered for confirmation.
    assert "12,50" in answer.text.replace("\u00a0", " ")
    assert "1 250" not in answer.text.replace("\u00a0", " ")


def test_audit_amounts_are_formatted(app, signed_in) -> None:
    client, _staff = signed_in(Role.ADMIN)
    with app.app_context():
        audit("refund.created", target="donation:1", amount=Money(1000, "USD"), status="pending")
        commit()
    page = client.get("/staff/audit").text
    assert "<b>amount</b>: $10.00" in page
    assert "&#34;currency&#34;" not in page
    assert '"currency"' not in page
