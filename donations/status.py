"""Status changes: one helper for every model whose status follows written rules.

Each such model (donations, plans, refunds, disputes, payouts, reminders)
names its rule table -- which status may follow which -- in
``status_rules``, next to its ``StrEnum``. :func:`change_status` is the only
way a stored status changes:

- a change the rules forbid raises :class:`InvalidTransition`;
- asking for the status the row already has is a no-op, logged;
- the write is a compare-and-set (``UPDATE ... WHERE id = ? AND status = ?``),
  so of two writers racing from the same status exactly one wins; the loser
  reads what the winner wrote and decides again by the rules (a repeat, a
  further allowed change, or an impossible one, which raises).

Views and templates ask the model (:meth:`StatusRules.allows`, or a property
built on it such as ``plan.can_cancel``) rather than restating the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session, object_session

from donations.db import db, utcnow

log = logging.getLogger(__name__)

S = TypeVar("S", bound=StrEnum)

# A loser of the compare-and-set decides again from what it finds; the rule
# tables allow no long chains, so a few rounds always settle.
ROUNDS = 5


class InvalidTransition(RuntimeError):
    """A status change that the ledger's rules forbid."""


class StatusRules(Generic[S]):
    """Which status may follow which, for one model."""

    def __init__(self, name: str, transitions: Mapping[S, frozenset[S]]) -> None:
        missing = [s for s in type(next(iter(transitions))) if s not in transitions]
        if missing:
            raise ValueError(f"{name}: no rule for {missing}")
        self.name = name
        self.transitions = transitions

    def allows(self, current: S, new: S) -> bool:
        """True when ``new`` may replace ``current`` (a change, not a repeat)."""
        return new in self.transitions[current]

    def settled(self, status: S) -> bool:
        """No status may follow this one."""
        return not self.transitions[status]


class RuledStatus:
    """For models whose ``status`` follows a ``status_rules`` table: ask, never restate."""

    status_rules: ClassVar[StatusRules[Any]]

    def can_become(self, new: Any) -> bool:
        """The rules allow a change from the current status to ``new``."""
        return self.status_rules.allows(getattr(self, "status"), new)  # noqa: B009 - mapped


class HasStatus(Protocol):
    id: Any
    status: Any
    status_rules: ClassVar[StatusRules[Any]]


def change_status(row: HasStatus, new: S, **values: Any) -> bool:
    """Move ``row`` to status ``new`` by its rules; True if this call made the change.

    ``values`` are written in the same UPDATE, only when the change is made
    (e.g. ``succeeded_at``). The row is refreshed afterwards. Raises
    :class:`InvalidTransition` when the rules forbid the change from the
    status the row has -- also when a concurrent writer got there first.
    """
    session: Session = object_session(row) or db.session()  # type: ignore[assignment]
    model = type(row)
    rules: StatusRules[S] = model.status_rules
    session.flush()
    for _ in range(ROUNDS):
        current = row.status
        if current is new:
            log.info("%s %s already %s", rules.name, row.id, new)
            return False
        if not rules.allows(current, new):
            raise InvalidTransition(f"{rules.name} {row.id}: {current} -> {new}")
        changes: dict[str, Any] = {"status": new, **values}
        if hasattr(model, "updated_at"):
            changes["updated_at"] = utcnow()
        result = session.execute(
            update(model)
            .where(model.id == row.id, model.status == current)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
        session.refresh(row)
        if result.rowcount == 1:  # type: ignore[attr-defined]
            log.info("%s %s: %s -> %s", rules.name, row.id, current, new)
            return True
        log.info("%s %s: lost a race from %s; now %s", rules.name, row.id, current, row.status)
    raise InvalidTransition(f"{rules.name} {row.id}: kept changing under us")  # pragma: no cover
