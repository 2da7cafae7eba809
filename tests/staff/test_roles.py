"""Every back-office route, as every role and as an anonymous visitor."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from werkzeug.routing import AnyConverter, Rule

from donations.db import commit
from donations.staff.models import Role
from tests import factories
from tests.staff.conftest import csrf_token, sign_in

PUBLIC = "public"
# The spec: the least role each endpoint needs. A new /staff route fails
# this test until it is listed here.
EXPECTED: dict[str, str | Role] = {
    "staff.login": PUBLIC,
    "staff.login_code": PUBLIC,
    "staff.enrol": PUBLIC,
    "staff.sign_out": Role.VIEWER,
    "staff.account": Role.VIEWER,
    "staff.dashboard": Role.VIEWER,
    # Emails, names and timelines: personal data, finance and above.
    "staff.supporters": Role.FINANCE,
    "staff.supporter": Role.FINANCE,
    "staff.note": Role.FINANCE,
    "staff.refund": Role.FINANCE,
    "staff.resend": Role.FINANCE,
    "staff.cancel": Role.FINANCE,
    "staff.audit_log": Role.ADMIN,
    "staff.team": Role.ADMIN,
    "staff.team_action": Role.ADMIN,
    "staff.settings": Role.ADMIN,
    "staff.restore_setting": Role.ADMIN,
    "staff.parked_webhooks": Role.ADMIN,
    "staff.retry_webhook": Role.ADMIN,
    # Erasure requests from the supporters' own page (donations/manage).
    "manage_staff.erasure_requests": Role.ADMIN,
    "manage_staff.confirm": Role.ADMIN,
    "manage_staff.decline": Role.ADMIN,
    # Upgrade links proposed to a supporter (donations/manage/offers.py).
    "manage_offers.offer": Role.FINANCE,
    # A/B tests of the ask: everyone reads the results, admins change them.
    "staff.experiments": Role.VIEWER,
    "staff.experiment": Role.VIEWER,
    "staff.create_experiment_view": Role.ADMIN,
    "staff.experiment_action": Role.ADMIN,
    "staff.stop_experiment_variant": Role.ADMIN,
    # Reports: everyone on staff reads them (viewers the aggregated figures
    # only, see test_personal_data_needs_finance); exporting needs finance.
    "reports.index": Role.VIEWER,
    "reports.screen": Role.VIEWER,
    "reports.download": Role.FINANCE,
    "reports.prepare": Role.FINANCE,
    "reports.prepared": Role.FINANCE,
    "reports.prepared_file": Role.FINANCE,
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


# An export it asks for records its progress from a connection of its own: on
# SQLite (one writer) that would wait for a test's transaction, on PostgreSQL
# it would miss the uncommitted row; so the test commits for real.
@pytest.mark.sweep
def test_role_matrix(app: Flask, make_staff) -> None:
    other = make_staff(Role.VIEWER, "other@newsroom.org")
    with app.app_context():
        owner = factories.supporter()
        gift = factories.donation(owner, stripe_payment_intent_id="pi_matrix")
        plan = factories.plan(owner, status=factories.PlanStatus.INCOMPLETE)
        experiment = factories.experiment()
        commit()
        ids = {
            "supporter_id": owner.id,
            "donation_id": gift.id,
            "plan_id": plan.id,
            "staff_id": other.id,
            "event_id": 1,
            "experiment_id": experiment.id,
            "variant_id": experiment.variants[1].id,
            "version_id": 1,
            "export_id": 1,
            "request_id": 1,
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


# What a viewer must never see on any screen: one supporter's email and name.
PERSONAL = ("privacy.subject@example.org", "Prudence Subject")


@pytest.mark.parametrize("visitor", list(Role))
def test_personal_data_needs_finance(app: Flask, make_staff, visitor: Role) -> None:
    """Every GET screen of the back office, as each role: a viewer sees no one's email or name."""
    from donations.staff.reports.catalogue import REPORTS

    with app.app_context():
        owner = factories.supporter(*PERSONAL, newsletter_opt_in=True)
        gift = factories.donation(owner, 1234, stripe_payment_intent_id="pi_personal")
        plan = factories.plan(owner, 700, stripe_subscription_id="sub_personal")
        commit()
        ids = {"supporter_id": owner.id, "donation_id": gift.id, "plan_id": plan.id}
    client = app.test_client()
    sign_in(app, client, make_staff(visitor))
    screens = [f"/staff/reports/{name}" for name in REPORTS] + [
        "/staff/",
        "/staff/reports/",
        "/staff/supporters?q=privacy.subj",
        f"/staff/supporters/{ids['supporter_id']}",
    ]
    for url in screens:
        page = client.get(url)
        assert page.status_code in (200, 403), url
        for value in PERSONAL:
            shown = value in page.text
            if visitor is Role.VIEWER:
                assert not shown, f"{url} shows {value} to a viewer"
    if visitor is not Role.VIEWER:
        # ... and the rows finance works with do name them.
        for url in ("/staff/reports/ledger", "/staff/reports/plans", "/staff/reports/supporters"):
            assert PERSONAL[0] in client.get(url).text, url
        assert PERSONAL[1] in client.get(f"/staff/supporters/{ids['supporter_id']}").text
    else:
        # Aggregated reports still show their figures to a viewer.
        monthly = client.get("/staff/reports/monthly").text
        assert "12.34" in monthly
        assert "Supporters" not in client.get("/staff/").text.split("<main", 1)[0]


def test_actions_are_shown_to_finance_and_the_page_refused_to_viewers(app, signed_in) -> None:
    with app.app_context():
        owner = factories.supporter()
        factories.donation(owner, stripe_payment_intent_id="pi_hidden")
        supporter_id, email = owner.id, owner.email
        commit()
    client, _ = signed_in(Role.FINANCE)
    page = client.get(f"/staff/supporters/{supporter_id}").text
    assert "Refund…" in page
    assert "Add a note" in page
    assert "Audit log" not in page
    assert email in page
    viewer, _ = signed_in(Role.VIEWER)
    refused = viewer.get(f"/staff/supporters/{supporter_id}")
    assert refused.status_code == 403
    assert email not in refused.text
    assert "pi_hidden" not in refused.text
