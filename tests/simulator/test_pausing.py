"""Pausing and ending subscriptions at the period's end (devtools/simulator/pausing.py),
checked against the running simulator through the real SDK."""

from __future__ import annotations

import time

import pytest
import requests
import stripe

from tests.harness import Simulator
from tests.simulator.test_differences import _subscribe


def _renew(simulator: Simulator, subscription_id: str, **data: object) -> dict:
    answer = requests.post(
        f"{simulator.url}/_simulator/subscriptions/{subscription_id}/renew", data=data, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _period_end(subscription: dict) -> int:
    return int(subscription["items"]["data"][0]["current_period_end"])


def test_difference_pause_collection(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    assert subscription["pause_collection"] is None
    resumes_at = int(time.time()) + 3600
    paused = client.v1.subscriptions.update(
        subscription["id"], {"pause_collection": {"behavior": "void", "resumes_at": resumes_at}}
    )
    assert paused.pause_collection is not None
    assert (paused.pause_collection.behavior, paused.pause_collection.resumes_at) == (
        "void",
        resumes_at,
    )
    assert paused.status == "active"  # a pause is not a status
    again = client.v1.subscriptions.retrieve(subscription["id"])
    assert again.pause_collection is not None
    resumed = client.v1.subscriptions.update(subscription["id"], {"pause_collection": ""})
    assert resumed.pause_collection is None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(
            subscription["id"], {"pause_collection": {"behavior": "sometimes"}}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(
            subscription["id"],
            {"pause_collection": {"behavior": "void", "resumes_at": int(time.time()) - 10}},
        )


def test_difference_paused_renewal_voided(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    end = _period_end(subscription)
    resumes_at = end + 86400
    client.v1.subscriptions.update(
        subscription["id"], {"pause_collection": {"behavior": "void", "resumes_at": resumes_at}}
    )
    skipped = _renew(simulator, subscription["id"])
    assert skipped["status"] == "void"
    assert skipped["amount_paid"] == 0
    assert skipped["payments"]["data"] == []
    assert skipped["billing_reason"] == "subscription_cycle"
    still = client.v1.subscriptions.retrieve(subscription["id"])
    assert still.status == "active"
    assert still.pause_collection is not None

    # The next period, after resumes_at: the pause is over and one period is billed.
    billed = _renew(simulator, subscription["id"], at=resumes_at + 30 * 86400)
    assert billed["status"] == "paid"
    assert billed["amount_paid"] == 500  # one period: nothing caught up
    assert client.v1.subscriptions.retrieve(subscription["id"]).pause_collection is None
    invoices = client.v1.invoices.list({"subscription": subscription["id"]}).data
    assert sorted((i.status, i.amount_paid) for i in invoices) == [
        ("paid", 500),
        ("paid", 500),
        ("void", 0),
    ]


def test_difference_cancel_at_period_end(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    end = _period_end(subscription)
    marked = client.v1.subscriptions.update(subscription["id"], {"cancel_at_period_end": True})
    assert marked.cancel_at_period_end is True
    assert marked.cancel_at == end
    assert marked.status == "active"
    kept = client.v1.subscriptions.update(subscription["id"], {"cancel_at_period_end": False})
    assert kept.cancel_at is None
    client.v1.subscriptions.update(subscription["id"], {"cancel_at_period_end": True})

    ended = _renew(simulator, subscription["id"])
    assert ended["object"] == "subscription"
    assert ended["status"] == "canceled"
    assert ended["ended_at"]
    invoices = client.v1.invoices.list({"subscription": subscription["id"]}).data
    assert len(invoices) == 1  # the first; the period's end billed nothing
