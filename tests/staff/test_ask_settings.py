"""The ask's settings: typos refused at the field, tried out before saving, restorable."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from donations.ask.config import DEMO_ASK, AskConfig
from donations.ask.models import Setting, SettingVersion
from donations.ask.services import save_ask_config
from donations.db import commit, db
from donations.staff.ask_preview import dry_render_ask
from donations.staff.models import AuditEntry, Role
from tests.staff.conftest import csrf_token


def changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(DEMO_ASK)
    change(data)
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _rename_currency(data: dict[str, Any]) -> None:
    data["amounts"]["eur"] = data["amounts"].pop("EUR")


# (what an admin typed, what the message at the field says)
BAD: list[tuple[str, str]] = [
    (
        json.dumps(changed(_rename_currency)),
        'amounts → eur: "eur" must be written in capitals: EUR',
    ),
    (
        json.dumps(changed(_set("default_currency", "usd"))),
        'default_currency: "usd" must be written in capitals',
    ),
    (json.dumps(changed(_set("default_currency", "CHF"))), "CHF has no amounts"),
    (
        json.dumps(changed(_set("amounts.USD.once.presets", [31337]))).replace("31337", "1e309"),
        "presets[0]: Infinity is not a whole number",
    ),
    (
        json.dumps(changed(_set("amounts.USD.once.presets", [1000, 2500]))).replace(
            "2500]", "1e309]"
        ),
        "presets[1]: Infinity is not a whole number",
    ),
    (json.dumps(changed(_set("amounts.USD.once.presets.0", 12.5))), "12.5 is not a whole number"),
    (json.dumps(changed(_set("amounts.USD.once.presets.0", True))), "true is not a whole number"),
    (
        json.dumps(changed(_set("amounts.USD.once.presets.0", "1000"))),
        '"1000" is not a whole number',
    ),
    (
        json.dumps(changed(_set("amounts.USD.once.presets.0", 10**30))),
        "is not between 1 and 99,999,999",
    ),
    (json.dumps(changed(_set("amounts.USD.once.minimum", -5))), "minimum: -5 is not between"),
    (json.dumps(changed(_set("amounts.USD.once.default", 50))), "minimum ≤ default ≤ maximum"),
    (json.dumps(changed(_set("amounts.USD.monthly.maximum", 100))), "minimum ≤ default ≤ maximum"),
    (
        json.dumps(changed(_set("amounts.USD.once.presets.0", 5_000_000))),
        "5000000 is outside 100–1000000",
    ),
    (
        json.dumps(
            changed(_set("amounts.USD.once.presets", [])),
        ),
        "give a list of 1 to 8 amounts",
    ),
    (json.dumps(changed(_set("amounts.USD.once.presets", [1000, 1000]))), "each amount once"),
    (
        json.dumps(changed(_set("amounts.USD.weekly", {}))),
        "amounts → USD → weekly: not one of once",
    ),
    (json.dumps(changed(_set("amounts.XYZ", {}))), "XYZ is not an ISO 4217 currency"),
    (
        json.dumps(changed(_set("methods.sepa_debit", ["USD"]))),
        "sepa_debit cannot take USD; only EUR",
    ),
    (json.dumps(changed(_set("methods.sepa_debit", ["*"]))), "sepa_debit is only for EUR"),
    (json.dumps(changed(_set("methods", {"sepa_debit": ["EUR"]}))), "no method is offered for USD"),
    (json.dumps(changed(_set("methods.bitcoin", ["*"]))), "methods → bitcoin: unknown method"),
    (json.dumps(changed(_set("default_frequency", "weekly"))), '"weekly" is not one of once'),
    (
        json.dumps(
            changed(_set("fees", {"card": {"EUR": {"rate_bps": 31337, "fixed": 25}}}))
        ).replace("31337", "1e309"),
        "fees → card → EUR → rate_bps: Infinity is not a whole number",
    ),
    (json.dumps(changed(_set("fee_cover", "yes"))), "fee_cover: true or false"),
    (
        json.dumps(changed(_set("fee_cover_bps", 31337))).replace("31337", "1e309"),
        "fee_cover_bps: Infinity is not a whole number",
    ),
    (json.dumps(changed(_set("embed", {"views": -1}))), "embed → views: -1 is not between 0"),
    (json.dumps(changed(_set("embed", {"upsell": "yes"}))), "embed → upsell: true or false"),
    (json.dumps(changed(_set("default_curency", "USD"))), "default_curency: unknown setting"),
    (
        json.dumps(changed(_set("headline", {"ru": "Только по-русски"}))),
        'the English text ("en") is needed',
    ),
    (json.dumps(changed(_set("headline.en", "x" * 301))), "at most 300 characters"),
    (json.dumps(changed(_set("appeal.en", ""))), "appeal → en: give some text"),
    (json.dumps(DEMO_ASK).replace("2500", "NaN", 1), "NaN is not a number JSON allows"),
    ("[" * 24_000 + "]" * 24_000, "not valid JSON"),
    ('{"amounts": 1' + "0" * 5000 + "}", "not valid JSON"),
    ("not json", "not valid JSON (line 1, column 1)"),
    ("[1, 2]", "the settings must be a JSON object"),
]


def _settings_form(client: FlaskClient) -> str:
    page = client.get("/staff/settings")
    assert page.status_code == 200
    return csrf_token(page.text)


@pytest.mark.parametrize(("typed", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_a_typo_is_refused_at_the_field_and_changes_nothing(
    app: Flask, signed_in, typed: str, message: str
) -> None:
    client, _ = signed_in(Role.ADMIN)
    token = _settings_form(client)
    answer = client.post("/staff/settings", data={"csrf_token": token, "ask": typed})
    assert answer.status_code == 400
    errors = answer.text.split('id="ask-errors"', 1)[1].split("</ul>", 1)[0]
    assert message in errors.replace("&#34;", '"').replace("&quot;", '"')
    assert "nothing was changed" in errors or "not valid JSON" in errors or "JSON object" in errors
    with app.app_context():
        assert db.session.get(Setting, "ask") is None
        assert db.session.scalars(select(SettingVersion)).all() == []
        assert (
            db.session.scalars(select(AuditEntry).where(AuditEntry.action.like("setting.%"))).all()
            == []
        )
    # The ask stays online for readers.
    reader = app.test_client()
    assert reader.get("/support").status_code == 200
    assert reader.get("/support/checkout?frequency=once&currency=EUR&amount=10").status_code == 200


def test_the_dry_render_catches_what_would_answer_500(app: Flask) -> None:
    """What the stored lower-case code used to do to /support, found before saving."""
    broken = changed(_rename_currency)
    broken["methods"]["sepa_debit"] = ["eur"]
    with app.test_request_context("/staff/settings"):
        problems = dry_render_ask(AskConfig.from_data(broken))
        assert problems, "a lower-case currency renders"
        assert any(p.path[1] == "eur" for p in problems)
        assert dry_render_ask(AskConfig.from_data(DEMO_ASK)) == []


def test_stored_settings_that_cannot_be_used_leave_the_ask_online(app: Flask) -> None:
    good = changed(_set("headline.en", "The last good headline"))
    with app.test_request_context():
        save_ask_config(good)
        commit()
        # Written around the validation (an old row, a hand edit in the database).
        db.session.get(Setting, "ask").value = changed(_rename_currency)
        commit()
    app.extensions.pop("ask_config_cache", None)
    reader = app.test_client()
    page = reader.get("/support")
    assert page.status_code == 200
    assert "The last good headline" in page.text
    assert reader.get("/support/checkout?frequency=once&currency=EUR&amount=10").status_code == 200


def _save(client: FlaskClient, data: dict[str, Any]) -> None:
    token = _settings_form(client)
    saved = client.post("/staff/settings", data={"csrf_token": token, "ask": json.dumps(data)})
    assert saved.status_code == 303, saved.text


def test_versions_are_kept_and_one_can_be_restored(app: Flask, signed_in) -> None:
    client, admin = signed_in(Role.ADMIN)
    first = changed(_set("headline.en", "First headline"))
    second = changed(_set("headline.en", "Second headline"))
    _save(client, first)
    _save(client, second)
    page = client.get("/staff/settings").text
    with app.app_context():
        versions = db.session.scalars(select(SettingVersion).order_by(SettingVersion.id)).all()
        assert [v.value["headline"]["en"] for v in versions] == [
            "First headline",
            "Second headline",
        ]
        assert {v.staff_id for v in versions} == {admin.id}
        first_id, second_id = versions[0].id, versions[1].id
    assert f"Restore #{first_id}" in page
    assert f"Restore #{second_id}" not in page  # the current one
    assert "Second headline" in app.test_client().get("/support").text

    token = csrf_token(page)
    restored = client.post(
        f"/staff/settings/versions/{first_id}/restore", data={"csrf_token": token}
    )
    assert restored.status_code == 303
    assert restored.headers["Location"] == "/staff/settings"
    assert f"Version {first_id} of the ask settings restored." in client.get("/staff/settings").text
    assert "First headline" in app.test_client().get("/support").text
    with app.app_context():
        assert db.session.get(Setting, "ask").value["headline"]["en"] == "First headline"
        newest = db.session.scalars(
            select(SettingVersion).order_by(SettingVersion.id.desc())
        ).first()
        assert newest is not None
        assert newest.restored_from == first_id
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "setting.restored"))
        assert entry is not None
        assert entry.staff_id == admin.id
        assert entry.details["restored"] == first_id
        assert entry.details["before"]["headline"]["en"] == "Second headline"
        assert entry.details["after"]["headline"]["en"] == "First headline"
    # Without the CSRF token, or for a version that does not exist: refused, nothing changed.
    assert client.post(f"/staff/settings/versions/{second_id}/restore").status_code == 400
    assert (
        client.post(
            "/staff/settings/versions/999999/restore", data={"csrf_token": token}
        ).status_code
        == 404
    )
    with app.app_context():
        assert db.session.get(Setting, "ask").value["headline"]["en"] == "First headline"
        assert db.session.scalar(select(func.count()).select_from(SettingVersion)) == 3


def test_a_version_that_no_longer_validates_is_not_restored(app: Flask, signed_in) -> None:
    client, _ = signed_in(Role.ADMIN)
    _save(client, changed(_set("headline.en", "Current headline")))
    with app.app_context():
        old = SettingVersion(key="ask", value=changed(_rename_currency), actor="someone")
        db.session.add(old)
        commit()
        old_id = old.id
    token = _settings_form(client)
    answer = client.post(f"/staff/settings/versions/{old_id}/restore", data={"csrf_token": token})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/staff/settings"
    assert "cannot be restored; nothing was changed" in client.get("/staff/settings").text
    assert "Current headline" in app.test_client().get("/support").text
