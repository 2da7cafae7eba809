"""The ledger report's fee cover shortfall: a covered fee that Stripe charged more for."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from donations.db import commit
from donations.staff.models import Role
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import LEDGER_COLUMNS, ledger_rows
from tests.payments.stripe_flows import deliver, stale
from tests.support.test_fee_cover import checkout_with_cover

# Stripe's test card for Brazil: the simulator charges it the international rate.
INTERNATIONAL_CARD = "4000000760000002"


def test_an_international_card_s_shortfall_has_its_own_column(
    client, ctx, simulator, signed_in
) -> None:
    gift = checkout_with_cover(client, "10", "USD")
    assert simulator.confirm(gift.client_secret, card=INTERNATIONAL_CARD).status_code == 200
    assert (
        deliver(client, "payment_intent.succeeded", stale(gift.intent_id, "payment_intent")) == 200
    )
    donation = gift.donation()
    # 1061 at the international 4.4% + 30: 47 + 30 = 77, 16 more than the 61 covered.
    assert (donation.fee_cover_amount, donation.fee, donation.net) == (61, 77, 984)
    covered = checkout_with_cover(client, "20", "USD")
    simulator.confirm(covered.client_secret)
    deliver(client, "payment_intent.succeeded", stale(covered.intent_id, "payment_intent"))
    commit()

    names = [c.key for c in LEDGER_COLUMNS]
    rows = {
        row[0]: dict(zip(names, row, strict=True))
        for row in ledger_rows(ReportFilters(), ZoneInfo("UTC"))
    }
    assert str(rows[donation.id]["fee_shortfall"]) == "0.16"
    assert str(rows[covered.donation().id]["fee_shortfall"]) == "0.00"

    staff, _ = signed_in(Role.FINANCE)
    answer = staff.get("/staff/reports/ledger.csv")
    assert answer.status_code == 200
    table = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True).removeprefix("\ufeff"))))
    by_id = {line["donation_id"]: line for line in table}
    assert by_id[str(donation.id)]["fee_shortfall"] == "0.16"
    assert by_id[str(donation.id)]["net"] == "9.84"
    assert by_id[str(covered.donation().id)]["fee_shortfall"] == "0.00"
