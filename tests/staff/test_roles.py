"""Every back-office route, as every role and as an anonymous visitor."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from werkzeug.routing import AnyConverter, Rule

from donations.db import commit
from donations.staff.models import Role
from tests.staff import factories
from tests.staff.conftest import csrf_token, sign_in

PUBLIC = "public"
# The spec: the least role each endpoint needs. A new /staff route fails
# this test until it is listed here.
EXPECTED: dict[str, str | Role] = {
    "staff.login": PUBLIC,
    "staff.login_code": PUBLIC,
    "staff.enrol": PUBLIC,
    "staff.sign_out": Role.VIEWER,
    "staff.dashboard": Role.VIEWER,
    "staff.supporters": Role.VIEWER,
    "staff.supporter": Role.VIEWER,
    "staff.note": Role.FINANCE,
    "staff.refund": Role.FINANCE,
    "staff.resend": Role.FINANCE,
    "staff.cancel": Role.FINANCE,
    "staff.audit_log": Role.ADMIN,
    "staff.team": Role.ADMIN,
    "staff.team_action": Role.ADMIN,
    "staff.settings": Role.ADMIN,
    # Reports: everyone on staff reads them; exporting needs finance.
    "reports.index": Role.VIEWER,
    "reports.screen": Role.VIEWER,
    "reports.download": Role.FINANCE,
}
VISITORS: list[Role | None] = [None, Role.VIEWER, Role.FINANCE, Role.ADMIN]


def staff_rules(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.rule.startswith("/staff")),
        key=lambda r: r.rule,
    )


def urls_for(rule: Rule, ids: dict[str, int]) -> list[str]:
    """Every concrete URL of a rule: ids of seeded rows, each value of an any()."""
    urls = [rule.rule]
    for name, converter in rule._converters.items():
        values = (
            sorted(converter.items) if isinstance(converter, AnyConverter) else [str(ids[name])]
        )
        pattern = re.compile(r"<[^>]*\b" + name + ">")
        urls = [pattern.sub(value, url) for url in urls for value in values]
    return urls


def test_every_staff_route_is_in_the_matrix(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in staff_rules(app)}
    assert endpoints == set(EXPECTED), "list new /staff routes in EXPECTED"
    for endpoint, expected in EXPECTED.items():
        declared = getattr(app.view_functions[endpoint], "required_role", PUBLIC)
        assert declared == expected, endpoint


def test_role_matrix(app: Flask, make_staff) -> None:  # type: ignore[no-untyped-def]
    other = make_staff(Role.VIEWER, "other@newsroom.org")
    with app.app_context():
        owner = factories.supporter()
        gift = factories.donation(owner, stripe_payment_intent_id="pi_matrix")
        plan = factories.plan(owner, status=factories.PlanStatus.INCOMPLETE)
        commit()
        ids = {
            "supporter_id": owner.id,
            "donation_id": gift.id,
            "plan_id": plan.id,
            "staff_id": other.id,
        }
    accounts = {role: make_staff(role) for role in Role}
    checked = 0
    for rule in staff_rules(app):
        expected = EXPECTED[rule.endpoint]
        for method in sorted({"GET", "POST"} & (rule.methods or set())):
            for url in urls_for(rule, ids):
                for visitor in VISITORS:
                    client = app.test_client()
                    if visitor is not None:
                        sign_in(app, client, accounts[visitor])
                        token = csrf_token(client.get("/staff/").text)
                    else:
                        token = csrf_token(client.get("/staff/login").text)
                    # Buffered: a streamed download (reports) left half-read would
                    # keep its request context pushed into the next request.
                    answer = client.open(
                        url, method=method, data={"csrf_token": token}, buffered=True
                    )
                    where = f"{method} {url} as {visitor or 'anonymous'}"
                    assert answer.status_code < 500, where
                    checked += 1
                    if expected == PUBLIC:
                        assert answer.status_code != 403, where
                    elif visitor is None:
                        assert answer.status_code == 302, where
                        assert "/staff/login" in answer.headers["Location"], where
                    elif not visitor.includes(Role(expected)):
                        assert answer.status_code == 403, where
                    else:
                        assert answer.status_code != 403, where
                        if rule.endpoint != "staff.sign_out":
                            assert "/staff/login" not in answer.headers.get("Location", ""), where
    assert checked >= 100


@pytest.mark.parametrize("role", [Role.VIEWER, Role.FINANCE])
def test_actions_are_hidden_from_roles_that_cannot_use_them(app, signed_in, role) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.supporter()
        factories.donation(owner, stripe_payment_intent_id="pi_hidden")
        supporter_id = owner.id
        commit()
    client, _ = signed_in(role)
    page = client.get(f"/staff/supporters/{supporter_id}").text
    assert ("Refund…" in page) is (role is Role.FINANCE)
    assert ("Add a note" in page) is (role is Role.FINANCE)
    assert "Audit log" not in page
