"""Inputs a browser or Stripe can send that once answered 500: each must get a 4xx (or
a normal page) and no traceback, on both databases.

The fuzz test over every route is ``tests/test_fuzz.py``; this file pins the cases
the security review found, one row each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from donations.staff.models import Role
from tests.conftest import Tracebacks
from tests.harness import WEBHOOK_SECRET, sign_webhook_payload
from tests.staff.conftest import csrf_token, make_staff, signed_in  # noqa: F401 - fixtures


def _assert_no_error(response, tracebacks: Tracebacks) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.data, "an empty body"
    logged = [r for r in tracebacks.records if r.exc_info]
    assert not logged, logged[0].getMessage()


def _signed(body: str, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Stripe-Signature": sign_webhook_payload(
            body, WEBHOOK_SECRET, int(time.time()) if timestamp is None else timestamp
        ),
        "Content-Type": "application/json",
    }


def _event(**fields: object) -> str:
    event: dict[str, object] = {
        "id": "evt_test_bad_input",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "data": {"object": {"id": "pi_unknown", "object": "payment_intent"}},
    }
    event.update(fields)
    return json.dumps(event)


def _nested(depth: int) -> str:
    return '{"id": "evt_deep", "object": "event", "data": ' + "[" * depth + "]" * depth + "}"


def _webhook(body: str, headers: dict[str, str] | None = None) -> Callable[[FlaskClient], object]:
    return lambda c: c.post("/webhooks/stripe", data=body, headers=headers or _signed(body))


def _get(url: str, **headers: str) -> Callable[[FlaskClient], object]:
    return lambda c: c.get(url, headers=headers)


def _unsigned(timestamp: str) -> dict[str, str]:
    return {"Stripe-Signature": f"t={timestamp},v1=00", "Content-Type": "application/json"}


PUBLIC_CASES: list[tuple[str, Callable[[FlaskClient], object]]] = [
    ("reminder page Referer http://[", _get("/reminders/new", Referer="http://[")),
    ("language next=/%0a/x", _get("/language/en?next=/%0a/x")),
    ("language next=/%09/evil", _get("/language/en?next=/%09/evil.example")),
    ("language next=%00", _get("/language/en?next=/%00")),
    ("300-character Host", _get("/support", Host="h" * 300)),
    ("300-character Host, 404", _get("/nowhere", Host="h" * 300)),
    ("Host with a NUL", _get("/support", Host="a\x00b")),
    ("pay NUL token", _get("/support/pay/%00")),
    ("thanks NUL token", _get("/support/thanks/%00")),
    ("pay long token", _get("/support/pay/" + "x" * 5000)),
    ("unsubscribe NUL token", _get("/reminders/unsubscribe/%00")),
    ("ask campaign NUL", _get("/support?campaign=%00&amount=%00&currency=%00")),
    ("ask huge amount", _get("/support?amount=" + "9" * 5000)),
    ("ask amount 1e309", _get("/support?amount=1e309")),
    (
        "checkout page huge amount",
        _get("/support/checkout?frequency=once&currency=USD&amount=" + "9" * 5000),
    ),
    ("webhook t=²", _webhook(_event(), _unsigned("²"))),
    ("webhook 5,000-digit t", _webhook(_event(), _unsigned("9" * 5000))),
    ("webhook created out of range", _webhook(_event(created=10**20))),
    ("webhook created negative", _webhook(_event(created=-(10**20)))),
    ("webhook created text", _webhook(_event(created="soon"))),
    ("webhook deeply nested", _webhook(_nested(100_000))),
    ("webhook long id", _webhook(_event(id="evt_" + "x" * 500))),
    ("webhook long type", _webhook(_event(type="x" * 500))),
    ("webhook NUL id", _webhook(_event(id="evt_\x00"))),
    ("webhook id not text", _webhook(_event(id=5, type=["a"]))),
    ("webhook data not object", _webhook(_event(data=[1]))),
]


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=[name for name, _ in PUBLIC_CASES])
def test_public_bad_input_is_not_a_server_error(client, tracebacks, case) -> None:
    _, send = case
    _assert_no_error(send(client), tracebacks)


def _details_form(client: FlaskClient, **fields: str) -> dict[str, str]:
    page = client.get("/support/checkout?frequency=once&amount=10&currency=USD")
    assert page.status_code == 200
    import re

    hidden = dict(re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', page.text))
    form = {
        "csrf_token": hidden["csrf_token"],
        "attempt": hidden["attempt"],
        "amount": "10",
        "frequency": "once",
        "currency": "USD",
        "email": "reader@example.org",
        "name": "Ada",
        "country": "GB",
    }
    form.update(fields)
    return form


FORM_CASES: list[tuple[str, dict[str, str], str]] = [
    ("5,000-digit amount", {"amount": "9" * 5000}, ""),
    ("amount 1e309", {"amount": "1e309"}, ""),
    ("NUL in the name", {"name": "Ada\x00"}, ""),
    ("NUL in the email", {"email": "a\x00@example.org"}, ""),
    ("NUL in the attempt", {"attempt": "\x00" * 8}, ""),
    ("NUL in the country", {"country": "G\x00"}, ""),
    ("NUL in the campaign", {}, "?campaign=%00"),
    ("over-long name", {"name": "n" * 5000}, ""),
]


@pytest.mark.parametrize("case", FORM_CASES, ids=[name for name, _, _ in FORM_CASES])
def test_checkout_bad_input_is_not_a_server_error(client, tracebacks, case) -> None:
    _, fields, query = case
    response = client.post("/support/checkout" + query, data=_details_form(client, **fields))
    _assert_no_error(response, tracebacks)


def test_reminder_source_http_bracket_is_not_a_server_error(client, tracebacks) -> None:
    page = client.get("/reminders/new")
    form = {
        "csrf_token": csrf_token(page.text),
        "email": "reader@example.org",
        "when": "next_month",
        "consent": "y",
        "source": "http://[",
    }
    response = client.post("/reminders/new", data=form, headers={"Referer": "http://["})
    _assert_no_error(response, tracebacks)


def test_staff_login_nul_email_is_not_a_server_error(client, tracebacks) -> None:
    page = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={"csrf_token": csrf_token(page.text), "email": "a\x00@b.org", "password": "x\x00"},
    )
    _assert_no_error(response, tracebacks)


STAFF_CASES = [
    "/staff/audit?page=²",
    "/staff/audit?page=" + "9" * 30,
    "/staff/audit?page=-1",
    "/staff/supporters/" + "9" * 23,
    "/staff/donations/" + "9" * 23 + "/refund",
    "/staff/plans/" + "9" * 23 + "/cancel",
    "/staff/supporters?q=%00",
    "/staff/supporters?q=" + "x" * 5000,
    "/staff/supporters?page=²",
    "/staff/reports/donations?from=%00&to=99999-01-01",
    "/staff/reports/donations.csv?from=0000-01-01",
]


@pytest.mark.parametrize("url", STAFF_CASES)
def test_staff_bad_input_is_not_a_server_error(
    app: Flask,
    signed_in,  # noqa: F811 - the fixture
    tracebacks,
    url: str,
) -> None:
    client, _ = signed_in(Role.ADMIN)
    _assert_no_error(client.get(url), tracebacks)
