"""Reading and saving the ask's configuration (the ``ask`` setting), with its history."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import current_app, g
from sqlalchemy import func, select

from donations.ask.config import (
    DEMO_ASK,
    AskConfig,
    AskConfigError,
    Problem,
    parse_ask_config,
    validate_ask_data,
)
from donations.ask.models import Setting, SettingVersion
from donations.db import db
from donations.process_cache import forget_kept, kept_in_process
from donations.public import forget_public_pages

log = logging.getLogger(__name__)

ASK_SETTING = "ask"


# How long a web process keeps the ask's settings before reading them again:
# the ask is the busiest page, and an admin's change may take this long to show.
ASK_CONFIG_TTL_SECONDS = 5.0
ASK_CONFIG_CACHE = "ask_config_cache"


def load_ask_config() -> AskConfig:
    """The ask's configuration, shared by a process's requests for a few seconds."""
    if "ask_config" in g:
        config: AskConfig = g.ask_config
        return config
    config = kept_in_process(ASK_CONFIG_CACHE, ASK_CONFIG_TTL_SECONDS, _read_ask_config)
    g.ask_config = config
    return config


def _read_ask_config() -> AskConfig:
    return _usable_config(
        db.session.scalar(select(Setting.value).where(Setting.key == ASK_SETTING))
    )


def _usable_config(data: Any) -> AskConfig:
    """The stored settings, or -- if they cannot be used (stored before they were
    validated, or edited in the database) -- the newest saved version that can,
    else the demo ask: the ask stays online either way."""
    if data is None:
        return AskConfig.from_data(DEMO_ASK)
    try:
        return parse_ask_config(data)
    except AskConfigError as exc:
        log.error("the stored ask settings cannot be used (%s); using an earlier version", exc)
    for value in db.session.scalars(
        select(SettingVersion.value)
        .where(SettingVersion.key == ASK_SETTING)
        .order_by(SettingVersion.id.desc())
        .limit(20)
    ):
        if not validate_ask_data(value):
            return AskConfig.from_data(value)
    return AskConfig.from_data(DEMO_ASK)


def stored_ask_data() -> dict[str, Any]:
    """What the settings screen edits: the stored value, else the demo ask."""
    value = db.session.scalar(select(Setting.value).where(Setting.key == ASK_SETTING))
    return value if isinstance(value, dict) else DEMO_ASK


# Who saved a version: (staff id, email), or None for the command line.
Editor = tuple[int | None, str]
# Tries a parsed configuration out (e.g. renders every page that shows it).
Check = Callable[[AskConfig], list[Problem]]


def save_ask_config(
    data: Any,
    *,
    restored_from: int | None = None,
    editor: Editor | None = None,
    check: Check | None = None,
) -> SettingVersion:
    """Validate, try out (``check``) and store new settings, keeping the previous ones as versions.

    Raises :class:`AskConfigError` listing every problem; nothing is changed then.
    Flushes; the caller commits.
    """
    config = parse_ask_config(data)
    problems = check(config) if check is not None else []
    if problems:
        raise AskConfigError(problems)
    setting = db.session.get(Setting, ASK_SETTING)
    if _version_count() == 0 and setting is not None:
        # The value from before versions were kept, so it too can be restored.
        db.session.add(SettingVersion(key=ASK_SETTING, value=setting.value, actor="before history"))
    staff_id, actor = editor if editor is not None else (None, "cli")
    version = SettingVersion(
        key=ASK_SETTING,
        value=data,
        staff_id=staff_id,
        actor=actor,
        restored_from=restored_from,
    )
    db.session.add(version)
    if setting is None:
        db.session.add(Setting(key=ASK_SETTING, value=data))
    else:
        setting.value = data
    db.session.flush()
    g.pop("ask_config", None)
    forget_kept(ASK_CONFIG_CACHE)
    forget_public_pages(current_app)
    return version


def _version_count() -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(SettingVersion)
            .where(SettingVersion.key == ASK_SETTING)
        )
        or 0
    )


def ask_versions(limit: int = 20) -> list[SettingVersion]:
    """The newest saved versions of the ask's settings, newest first."""
    return list(
        db.session.scalars(
            select(SettingVersion)
            .where(SettingVersion.key == ASK_SETTING)
            .order_by(SettingVersion.id.desc())
            .limit(limit)
        )
    )


def restore_ask_version(
    version_id: int, *, editor: Editor | None = None, check: Check | None = None
) -> SettingVersion:
    """Make an earlier version current again (checked like a new save); the new version."""
    old = db.session.get(SettingVersion, version_id)
    if old is None or old.key != ASK_SETTING:
        raise LookupError(version_id)
    return save_ask_config(old.value, restored_from=old.id, editor=editor, check=check)
