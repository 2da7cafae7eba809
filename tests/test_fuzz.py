"""Generated malformed input to every route in the URL map: never a 5xx, never a traceback.

The routes come from ``app.url_map`` at run time, so a route added later is fuzzed
without touching this file. Each route gets its own Hypothesis run: wrong
methods, odd path values (huge ids, NUL, unicode), query strings, form bodies,
JSON where a form is expected, raw bytes, and odd ``Host``, ``Referer``,
``Accept-Language``, ``Stripe-Signature`` and ``Content-Type`` headers; as a
stranger and as a signed-in admin (CSRF checks off, so the forms behind them are
reached). Runs on whichever database ``TEST_DATABASE`` names.

``FUZZ_EXAMPLES`` (default 20) sets the examples per route.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from werkzeug.routing import Rule

from donations.db import commit, db
from donations.staff.models import Role, StaffUser
from tests.conftest import Tracebacks
from tests.staff.conftest import make_staff, sign_in  # noqa: F401 - fixture

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
SKIPPED_ENDPOINTS = {"static"}  # files from disk, no input reaches our code

NASTY = [
    "",
    "\x00",
    "a\x00b",
    "²",
    "٣",
    "-1",
    "0",
    "9" * 30,
    "9" * 5000,
    "1e309",
    "NaN",
    "-Infinity",
    "10.005",
    "1,000",
    "http://[",
    "//evil.example",
    "/\t/evil.example",
    "/%0a/x",
    "javascript:alert(1)",
    "＝１＋１",
    "\u202e\u200b",
    "😀" * 50,
    "x" * 5000,
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "\r\nSet-Cookie: a=b",
    "once",
    "monthly",
    "USD",
    "usd",
    "reader@example.org",
    "a" * 250 + "@example.org",
]

FIELDS = [
    "email", "name", "country", "amount", "custom_amount", "frequency", "currency",
    "attempt", "newsletter", "cover_fee", "website", "reminder", "when", "months",
    "consent", "source", "password", "code", "next", "reason", "note", "body", "role",
    "config", "presets", "amount_minor", "q", "page", "from", "to", "status", "campaign",
    "lang", "token", "List-Unsubscribe", "confirm", "yes",
]  # fmt: skip

HOSTS = ["h" * 300, "a" * 64 + ".example", "[", "a b", "evil.example", "ü.example", ":80", ""]


def values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(max_size=40),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
    )


def path_value(converter: str, arguments: str) -> st.SearchStrategy[str]:
    if converter == "int":
        return st.one_of(st.integers(min_value=0, max_value=10**25).map(str), values().map(_quoted))
    if converter == "any":
        choices = re.findall(r"[\w-]+", arguments)
        return st.one_of(st.sampled_from(choices), values().map(_quoted))
    return st.one_of(values(), st.text(min_size=1, max_size=300)).map(_quoted)


def _quoted(value: str) -> str:
    return quote(value, safe="") or "x"


_ARGUMENT = re.compile(r"<(?:(\w+)(?:\((.*?)\))?:)?(\w+)>")


def request_path(rule: Rule) -> st.SearchStrategy[str]:
    parts: list[st.SearchStrategy[str]] = []
    last = 0
    for match in _ARGUMENT.finditer(rule.rule):
        parts.append(st.just(rule.rule[last : match.start()]))
        parts.append(path_value(match.group(1) or "default", match.group(2) or ""))
        last = match.end()
    parts.append(st.just(rule.rule[last:]))
    return st.tuples(*parts).map("".join)


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | values(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


def headers() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "Host": st.sampled_from(HOSTS),
            "Referer": values(),
            "Accept-Language": st.one_of(values(), st.just("ru;q=x, *;q=2, en-GB")),
            "Stripe-Signature": st.one_of(values(), st.just("t=²,v1=00"), st.just("t=1,v1=")),
            "X-Forwarded-For": values(),
            "X-Forwarded-Host": st.sampled_from(HOSTS),
            "Cookie": st.one_of(values(), st.just("session=" + "x" * 4000)),
        },
    ).map(lambda found: {k: _latin1(v) for k, v in found.items()})


def _latin1(value: str) -> str:
    # Headers travel as ISO-8859-1 in WSGI; anything else arrives as mojibake anyway.
    return value.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace("\n", "")


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def request_for(rule: Rule) -> st.SearchStrategy[dict[str, Any]]:
    own = sorted((rule.methods or {"GET"}) - {"HEAD", "OPTIONS"})
    body = st.one_of(
        st.none(),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), values(), max_size=8).map(
            lambda form: {"data": form}
        ),
        json_values().map(lambda value: {"json": value}),
        st.binary(max_size=300).map(
            lambda raw: {"data": raw, "content_type": "application/x-www-form-urlencoded"}
        ),
        st.binary(max_size=300).map(lambda raw: {"data": raw, "content_type": "text/plain"}),
    )
    return st.fixed_dictionaries(
        {
            "method": st.one_of(st.sampled_from(own), st.sampled_from(METHODS)),
            "path": request_path(rule),
            "query": st.dictionaries(
                st.sampled_from(FIELDS) | st.text(max_size=8), values(), max_size=5
            ),
            "body": body,
            "headers": headers(),
            "as_staff": st.booleans(),
        }
    )


def fuzzed_rules(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if r.endpoint not in SKIPPED_ENDPOINTS]


def test_every_route_is_fuzzed_including_ones_added_later(app: Flask) -> None:
    endpoints = {r.endpoint for r in fuzzed_rules(app)}
    assert {"support.start", "payments.stripe_webhook", "staff.settings", "set_language"} <= (
        endpoints
    )
    assert len(endpoints) == len({r.endpoint for r in app.url_map.iter_rules()}) - len(
        SKIPPED_ENDPOINTS
    )


def test_no_route_answers_5xx_or_logs_a_traceback(
    app: Flask,
    make_staff,  # noqa: F811 - the fixture
    tracebacks: Tracebacks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Past the CSRF check, so generated forms reach the views' own validation.
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    admin = make_staff(Role.ADMIN, "fuzz-admin@newsroom.org")
    stranger = app.test_client()
    staff = app.test_client()

    def signed_in_staff() -> FlaskClient:
        # A fuzzed request may have signed out, deactivated or demoted the admin.
        with app.app_context():
            db.session.execute(
                update(StaffUser)
                .where(StaffUser.id == admin.id)
                .values(active=True, role=Role.ADMIN)
            )
            commit()
        sign_in(app, staff, admin)
        return staff

    failures: list[str] = []
    for rule in fuzzed_rules(app):
        check = _route_check(rule, stranger, signed_in_staff, tracebacks)
        try:
            check()
        except AssertionError as exc:
            failures.append(f"{rule.rule} [{rule.endpoint}]: {exc}")
    assert not failures, "\n\n".join(failures)


def _route_check(
    rule: Rule,
    stranger: FlaskClient,
    signed_in_staff: Callable[[], FlaskClient],
    tracebacks: Tracebacks,
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(request_for(rule))
    def check(sent: dict[str, Any]) -> None:
        client = signed_in_staff() if sent["as_staff"] else stranger
        tracebacks.records.clear()
        response = client.open(
            sent["path"],
            method=sent["method"],
            query_string=sent["query"],
            headers=sent["headers"],
            **(sent["body"] or {}),
        )
        status = response.status_code
        logged = [r.getMessage() + str(r.exc_info[1]) for r in tracebacks.records if r.exc_info]
        assert status < 500, f"{sent['method']} {sent['path']} answered {status}"
        assert not logged, f"{sent['method']} {sent['path']} logged {logged[0]}"
        if sent["method"] not in ("HEAD", "OPTIONS") and status not in (204, 304):
            assert response.data, f"{sent['method']} {sent['path']} answered an empty body"

    return check
