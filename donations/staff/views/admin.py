"""What only admins see: the audit log, the team and the ask's settings."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from donations.db import commit, db, utcnow
from donations.payments.models import StripeEvent
from donations.payments.webhooks import parked_events, retry_parked_event
from donations.staff.auth import current_staff, require_role
from donations.staff.forms import ActionForm, RoleForm, SettingsForm
from donations.staff.models import Role, StaffUser
from donations.staff.services import (
    audit,
    audit_page,
    is_throttled,
    list_staff,
    reset_second_factor,
    set_active,
    set_role,
    unlock,
)
from donations.staff.views.blueprint import bp


@bp.get("/audit")
@require_role(Role.ADMIN)
def audit_log() -> ResponseReturnValue:
    # Only ASCII digits: "²".isdigit() is true but int("²") fails; clamped by audit_page.
    page = request.args.get("page", "1")
    wanted = int(page) if page.isascii() and page.isdigit() and len(page) <= 9 else 1
    entries, pages = audit_page(wanted)
    current = min(max(wanted, 1), pages)
    return render_template("staff/audit.html", entries=entries, page=current, pages=pages)


@bp.get("/team")
@require_role(Role.ADMIN)
def team() -> ResponseReturnValue:
    members = list_staff()
    return render_template(
        "staff/team.html",
        members=members,
        throttled={m.id for m in members if is_throttled(m)},
        action_form=ActionForm(),
        now=utcnow(),
    )


TEAM_ACTIONS = ("unlock", "reset-2fa", "deactivate", "activate", "role")


@bp.post("/team/<int:staff_id>/<any(" + ", ".join(f"'{a}'" for a in TEAM_ACTIONS) + "):action>")
@require_role(Role.ADMIN)
def team_action(staff_id: int, action: str) -> ResponseReturnValue:
    member = db.get_or_404(StaffUser, staff_id)
    form = RoleForm() if action == "role" else ActionForm()
    if not form.validate_on_submit():
        abort(400)
    if member.id == g.staff.id and action in ("unlock", "deactivate", "role", "reset-2fa"):
        flash("You cannot change your own account here; ask another admin.", "error")
        return redirect(url_for("staff.team"), 303)
    match action:
        case "unlock":
            unlock(member)
        case "reset-2fa":
            reset_second_factor(member)
        case "deactivate":
            set_active(member, False)
        case "activate":
            set_active(member, True)
        case "role":
            set_role(member, Role(form.role.data))
    commit()
    flash(f"{member.email}: done ({action}).")
    return redirect(url_for("staff.team"), 303)


def _settings_page(form: SettingsForm, status: int = 200) -> ResponseReturnValue:
    from donations.ask.services import ask_versions

    return render_template(
        "staff/settings.html", form=form, versions=ask_versions(), action_form=ActionForm()
    ), status


def _json_without_constants(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not a number JSON allows")

    return json.loads(text, parse_constant=refuse)


def _editor() -> tuple[int | None, str]:
    staff = current_staff()
    return (staff.id, staff.email) if staff is not None else (None, "")


@bp.route("/settings", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def settings() -> ResponseReturnValue:
    from donations.ask.config import AskConfigError
    from donations.ask.services import ASK_SETTING, save_ask_config, stored_ask_data
    from donations.staff.ask_preview import dry_render_ask

    current = stored_ask_data()
    form = SettingsForm()
    if request.method == "GET":
        form.ask.data = json.dumps(current, indent=2, ensure_ascii=False)
        return _settings_page(form)
    if not form.validate_on_submit():
        return _settings_page(form, 400)
    try:
        data = _json_without_constants(form.ask.data or "")
    except (ValueError, RecursionError) as exc:
        # json.JSONDecodeError is a ValueError; so are over-long integers.
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        form.ask.errors = [f"These settings cannot be used: this is not valid JSON{where}: {exc}"]
        return _settings_page(form, 400)
    try:
        version = save_ask_config(data, editor=_editor(), check=dry_render_ask)
    except AskConfigError as exc:
        db.session.rollback()
        form.ask.errors = ["These settings cannot be used; nothing was changed:"] + [
            str(problem) for problem in exc.problems
        ]
        return _settings_page(form, 400)
    audit(
        "setting.changed",
        target=f"setting:{ASK_SETTING}",
        before=current,
        after=data,
        version=version.id,
    )
    commit()
    flash("Ask settings saved.")
    return redirect(url_for("staff.settings"), 303)


@bp.post("/settings/versions/<int:version_id>/restore")
@require_role(Role.ADMIN)
def restore_setting(version_id: int) -> ResponseReturnValue:
    from donations.ask.config import AskConfigError
    from donations.ask.models import SettingVersion
    from donations.ask.services import ASK_SETTING, restore_ask_version, stored_ask_data
    from donations.staff.ask_preview import dry_render_ask

    old = db.session.get(SettingVersion, version_id)
    if old is None or old.key != ASK_SETTING:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    current = stored_ask_data()
    try:
        version = restore_ask_version(version_id, editor=_editor(), check=dry_render_ask)
    except AskConfigError as exc:
        db.session.rollback()
        flash(
            f"Version {version_id} cannot be restored; nothing was changed: "
            + "; ".join(str(p) for p in exc.problems),
            "error",
        )
        return redirect(url_for("staff.settings"), 303)
    audit(
        "setting.restored",
        target=f"setting:{ASK_SETTING}",
        restored=version_id,
        version=version.id,
        before=current,
        after=version.value,
    )
    commit()
    flash(f"Version {version_id} of the ask settings restored.")
    return redirect(url_for("staff.settings"), 303)


@bp.get("/webhooks")
@require_role(Role.ADMIN)
def parked_webhooks() -> ResponseReturnValue:
    return render_template("staff/webhooks.html", events=parked_events(), action_form=ActionForm())


@bp.post("/webhooks/<int:event_id>/retry")
@require_role(Role.ADMIN)
def retry_webhook(event_id: int) -> ResponseReturnValue:
    event = db.session.get(StripeEvent, event_id)
    if event is None or event.parked_at is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    stripe_event_id, event_type = event.stripe_event_id, event.type
    audit("webhook.retried", target=stripe_event_id, type=event_type)
    commit()
    if retry_parked_event(event_id):
        flash(f"{event_type} {stripe_event_id}: processed.")
    else:
        flash(f"{event_type} {stripe_event_id}: failed again; it stays parked.", "error")
    return redirect(url_for("staff.parked_webhooks"), 303)
