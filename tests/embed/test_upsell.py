"""Once to monthly: off by default; the rule; the reader's answer recorded on the gift."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from donations.ask.config import DEMO_ASK
from donations.ask.services import save_ask_config
from donations.db import commit, db
from donations.embed.services import upsell_amount
from donations.supporters.models import Donation, RecurringPlan
from tests.embed.test_attribution import checkout

MONTHLY = (500, 1000, 2000, 5000)


@pytest.mark.parametrize(
    ("once", "share", "expected"),
    [
        (2500, 3333, 1000),  # a third is 8.33: 10.00 is nearest
        (10000, 3333, 2000),  # 33.33: 20.00 (13.33 away) beats 50.00 (16.67 away)
        (1000, 3333, 500),  # 3.33: the smallest preset
        (3000, 5000, 1000),  # 15.00 is as near 10.00 as 20.00: the lower one
        (100_000, 3333, 5000),  # beyond the largest: the largest
    ],
)
def test_the_rule_by_hand(once: int, share: int, expected: int) -> None:
    assert upsell_amount(once, MONTHLY, share) == expected


def test_off_by_default(client, ctx) -> None:
    assert client.get("/embed/config.json?lang=en").get_json()["upsell"] is None


def test_switched_on_the_config_names_each_offer(client, ctx) -> None:
    data = copy.deepcopy(DEMO_ASK)
    data["embed"] = {"upsell": True}
    save_ask_config(data)
    commit()
    try:
        upsell = client.get("/embed/config.json?lang=ru").get_json()["upsell"]
    finally:
        db.session.rollback()
    assert upsell["offers"]["USD"]["25.00"][0] == "10.00"
    assert upsell["offers"]["EUR"]["100.00"][0] == "20.00"
    assert upsell["text"]["accept"] == "Да, %(amount)s в месяц"


@pytest.mark.parametrize(
    ("query", "model", "answer"),
    [
        ("frequency=monthly&amount=10&upsell=accepted", RecurringPlan, "accepted"),
        ("frequency=once&amount=25&upsell=declined", Donation, "declined"),
        ("frequency=once&amount=25&upsell=maybe", Donation, None),
        ("frequency=once&amount=25", Donation, None),
    ],
)
def test_the_answer_is_recorded_on_the_gift(client, ctx, query, model, answer) -> None:
    checkout(client, f"{query}&currency=USD&article=budget-vote")
    assert db.session.scalar(select(model.upsell)) == answer
