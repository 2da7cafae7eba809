"""What only admins do: the team and the settings, each change in the audit log."""

from __future__ import annotations

import json

from sqlalchemy import select

from donations.ask.models import Setting
from donations.db import db
from donations.staff.models import AuditEntry, Role, StaffSession, StaffUser
from tests.staff.conftest import csrf_token, sign_in


def test_team_actions(app, signed_in, make_staff) -> None:
    member = make_staff(Role.VIEWER, "member@newsroom.org")
    member_client = app.test_client()
    sign_in(app, member_client, member)
    client, admin = signed_in(Role.ADMIN)
    page = client.get("/staff/team")
    assert page.status_code == 200
    assert "member@newsroom.org" in page.text
    token = csrf_token(page.text)

    def act(staff_id: int, action: str, **data: str):
        return client.post(f"/staff/team/{staff_id}/{action}", data={"csrf_token": token, **data})

    def done(action: str, **data: str) -> None:
        answer = act(member.id, action, **data)
        assert answer.status_code == 303, action
        assert answer.headers["Location"] == "/staff/team"
        assert f"{member.email}: done ({action})." in client.get("/staff/team").text

    done("role", role="finance")
    assert act(member.id, "role", role="owner").status_code == 400
    with app.app_context():
        assert db.session.get(StaffUser, member.id).role is Role.FINANCE
    done("deactivate")
    signed_out = member_client.get("/staff/")  # signed out at once
    assert signed_out.status_code == 302
    assert signed_out.headers["Location"].startswith("/staff/login")
    done("activate")
    done("reset-2fa")
    done("unlock")
    # Admins cannot lock themselves out by accident.
    refused = act(admin.id, "deactivate")
    assert refused.status_code == 303
    assert "You cannot change your own account here" in client.get("/staff/team").text
    assert act(999_999, "unlock").status_code == 404

    with app.app_context():
        row = db.session.get(StaffUser, member.id)
        assert (row.role, row.active, row.totp_secret) == (Role.FINANCE, True, None)
        assert db.session.get(StaffUser, admin.id).active is True
        assert (
            db.session.scalar(
                select(StaffSession.end_reason).where(StaffSession.staff_id == member.id)
            )
            == "deactivated"
        )
        logged = db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target == f"staff:{member.id}")
            .order_by(AuditEntry.id)
        ).all()
        assert logged == [
            "staff.created",
            "staff.role_changed",
            "staff.deactivated",
            "staff.activated",
            "staff.2fa_reset",
            "staff.unlocked",
        ]


def test_settings_change_is_validated_and_audited(app, signed_in) -> None:
    client, admin = signed_in(Role.ADMIN)
    page = client.get("/staff/settings")
    assert page.status_code == 200
    token = csrf_token(page.text)
    current = json.loads(
        page.text.split('name="ask"', 1)[1]
        .split(">", 1)[1]
        .split("</textarea>", 1)[0]
        .replace("&#34;", '"')
        .replace("&quot;", '"')
        .replace("&amp;", "&")
    )
    for bad in ("not json", "[1, 2]", json.dumps({"headline": {}})):
        answer = client.post("/staff/settings", data={"csrf_token": token, "ask": bad})
        assert answer.status_code == 400
        assert "cannot be used" in answer.text
    changed = {**current, "headline": {"en": "Keep us independent", "ru": "Поддержите нас"}}
    with app.app_context():
        assert db.session.get(Setting, "ask") is None or (
            db.session.get(Setting, "ask").value["headline"] == current["headline"]
        )
    saved = client.post("/staff/settings", data={"csrf_token": token, "ask": json.dumps(changed)})
    assert saved.status_code == 303
    assert saved.headers["Location"] == "/staff/settings"
    assert "Ask settings saved." in client.get("/staff/settings").text
    with app.app_context():
        assert db.session.get(Setting, "ask").value["headline"]["en"] == "Keep us independent"
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "setting.changed"))
        assert entry.staff_id == admin.id
        assert entry.details["after"]["headline"]["en"] == "Keep us independent"
        assert entry.details["before"]["headline"] == current["headline"]


def test_the_team_page_offers_no_actions_on_your_own_row(app, signed_in, make_staff) -> None:
    member = make_staff(Role.VIEWER, "member@newsroom.org")
    client, admin = signed_in(Role.ADMIN)
    page = client.get("/staff/team").text
    own = page.split(f'<tr id="staff-{admin.id}">', 1)[1].split("</tr>", 1)[0]
    other = page.split(f'<tr id="staff-{member.id}">', 1)[1].split("</tr>", 1)[0]
    for label in ("Clear failed sign-ins", "Reset two-factor", "Deactivate", "Change"):
        assert f">{label}</button>" not in own
        assert f">{label}</button>" in other
    assert "/staff/account" in own
    # Sent anyway (an old page, a crafted form): refused, nothing recorded.
    token = csrf_token(page)
    for action in ("unlock", "reset-2fa", "deactivate"):
        answer = client.post(f"/staff/team/{admin.id}/{action}", data={"csrf_token": token})
        assert answer.status_code == 303
        assert answer.headers["Location"] == "/staff/team"
        assert "You cannot change your own account here" in client.get("/staff/team").text
    with app.app_context():
        logged = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == f"staff:{admin.id}")
        ).all()
        assert logged == ["staff.created"]
