"""Erasure asked for by the supporter (GDPR Art. 17), through the one erasure operation.

Applied at once when nothing can still charge them
(:func:`donations.operations.erasure.erase_supporter`, whose rules decide);
otherwise queued for staff, who confirm it (cancelling what still charges)
or decline it with a reason at /staff/erasure-requests; a queued request is
also applied by itself as soon as the supporter's plans can no longer
charge them (the next time they or staff look). The portal's own personal
data (sessions' addresses and browsers, asked-for new addresses) goes with
every erasure, whoever runs it (the ``supporter_erased`` signal).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from donations.db import db, utcnow
from donations.manage.models import EmailChange, ErasureRequest, ErasureStatus, ManageSession
from donations.manage.services import end_all_sessions, record
from donations.operations.erasure import (
    ERASED_DOMAIN,
    ErasureRefused,
    can_still_charge,
    erase_supporter,
    supporter_erased,
)
from donations.status import change_status
from donations.supporters.models import RecurringPlan, Supporter

log = logging.getLogger(__name__)


def charging_plans(supporter: Supporter) -> list[RecurringPlan]:
    return [plan for plan in supporter.plans if can_still_charge(plan)]


def pending_request(supporter: Supporter) -> ErasureRequest | None:
    return db.session.scalar(
        select(ErasureRequest).where(
            ErasureRequest.supporter_id == supporter.id,
            ErasureRequest.status == ErasureStatus.PENDING,
        )
    )


def _apply(request: ErasureRequest, actor: str, decided_by: int | None = None) -> bool:
    try:
        erase_supporter(request.supporter, actor=actor)
    except ErasureRefused:
        return False
    return change_status(request, ErasureStatus.APPLIED, decided_at=utcnow(), decided_by=decided_by)


def request_erasure(supporter: Supporter, *, source: str) -> ErasureRequest:
    """The supporter asks to be erased: done now if nothing can charge them, else queued."""
    request = pending_request(supporter)
    if request is None:
        request = ErasureRequest(supporter_id=supporter.id, status=ErasureStatus.PENDING)
        db.session.add(request)
        db.session.flush()
    live = charging_plans(supporter)
    record(
        "erasure_requested",
        supporter,
        source=source,
        target=f"erasure_request:{request.id}",
        plans_still_charging=len(live),
    )
    if not live:
        _apply(request, actor=f"supporter ({source})")
    return request


def apply_if_nothing_charges(request: ErasureRequest) -> bool:
    """A queued request whose supporter's plans have all stopped since: apply it."""
    if request.status is not ErasureStatus.PENDING or charging_plans(request.supporter):
        return False
    return _apply(request, actor="supporter (queued request)")


def withdraw_request(request: ErasureRequest, *, source: str) -> bool:
    if not request.can_become(ErasureStatus.WITHDRAWN):
        return False
    if not change_status(request, ErasureStatus.WITHDRAWN, decided_at=utcnow()):
        return False
    record(
        "erasure_withdrawn",
        request.supporter,
        source=source,
        target=f"erasure_request:{request.id}",
    )
    return True


def confirm_request(request: ErasureRequest, *, staff: Any) -> bool:
    """Staff confirm: the plans that still charge are cancelled, then the supporter erased."""
    from donations.staff.supporters import ActionRefused, cancel_plan

    if request.status is not ErasureStatus.PENDING:
        return False
    for plan in charging_plans(request.supporter):
        try:
            cancel_plan(plan, staff, "the supporter asked to be erased")
        except ActionRefused:
            log.warning("erasure request %s: plan %s not cancelled", request.id, plan.id)
            return False
    return _apply(request, actor=staff.email, decided_by=staff.id)


def decline_request(request: ErasureRequest, *, staff: Any, note: str) -> bool:
    if not request.can_become(ErasureStatus.DECLINED):
        return False
    return change_status(
        request,
        ErasureStatus.DECLINED,
        decided_at=utcnow(),
        decided_by=staff.id,
        note=note.strip()[:500],
    )


def pending_requests() -> list[ErasureRequest]:
    return list(
        db.session.scalars(
            select(ErasureRequest)
            .where(ErasureRequest.status == ErasureStatus.PENDING)
            .order_by(ErasureRequest.requested_at)
        )
    )


@supporter_erased.connect
def _forget_portal_data(supporter: Supporter, **_: Any) -> None:
    """Whoever erases (the supporter, staff, the CLI): the portal's personal data goes too."""
    end_all_sessions(supporter, "erased")
    for row in db.session.scalars(
        select(ManageSession).where(ManageSession.supporter_id == supporter.id)
    ):
        row.ip = None
        row.user_agent = None
    for change in db.session.scalars(
        select(EmailChange).where(EmailChange.supporter_id == supporter.id)
    ):
        change.new_email = f"erased-{supporter.id}@{ERASED_DOMAIN}"
        if change.confirmed_at is None and change.canceled_at is None:
            change.canceled_at = utcnow()
