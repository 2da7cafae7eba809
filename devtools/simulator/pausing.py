"""Simulator adaptations for pausing and ending subscriptions at the end of a period.

localstripe (1.15.10) refuses ``pause_collection`` on a subscription update
("Unexpected pause_collection"), keeps ``cancel_at_period_end`` as a flag that
nothing acts on, and has no clock, so a period never ends. Stripe:

- ``pause_collection={"behavior": "void", "resumes_at": t}``: each invoice the
  subscription makes before ``t`` is voided at once -- nothing charged, nothing
  owed later -- and at ``t`` the pause clears itself
  (https://docs.stripe.com/billing/subscriptions/pause-payment);
- ``cancel_at_period_end=true``: ``cancel_at`` is the period's end, when the
  subscription is cancelled instead of renewed
  (https://docs.stripe.com/billing/subscriptions/cancel).

The test-only renewal helper (``POST /_simulator/subscriptions/{id}/renew``,
in :mod:`devtools.simulator.adapt`) stands for the period's end; it takes
``at`` (Unix seconds, default the current period's end) as the moment it
happens. Each difference is named in ``adapt.DIFFERENCES`` and checked in
``tests/simulator/test_pausing.py``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

from devtools.simulator import events

BEHAVIORS = ("keep_as_draft", "mark_uncollectible", "void")


def _pause_from(value: Any) -> dict[str, Any] | None:
    if value in ("", None):
        return None
    if not isinstance(value, dict) or value.get("behavior") not in BEHAVIORS:
        raise UserError(400, "pause_collection[behavior] must be one of " + ", ".join(BEHAVIORS))
    resumes_at = value.get("resumes_at")
    if resumes_at not in (None, ""):
        try:
            resumes_at = int(resumes_at)
        except (TypeError, ValueError):
            raise UserError(400, "pause_collection[resumes_at] must be a timestamp") from None
        if resumes_at <= int(time.time()):
            raise UserError(400, "pause_collection[resumes_at] must be in the future")
    else:
        resumes_at = None
    return {"behavior": value["behavior"], "resumes_at": resumes_at}


def _period_end(subscription: Any) -> int:
    return int(subscription.items._list[0]._current_period()["end"])


def patch_subscriptions() -> None:
    sub_cls = resources.Subscription
    original_init = sub_cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self._pause_collection = None
        original_init(self, *args, **kwargs)

    sub_cls.__init__ = __init__

    original_update = sub_cls._update

    def _update(self: Any, **data: Any) -> Any:
        pausing = "pause_collection" in data
        pause = _pause_from(data.pop("pause_collection", None)) if pausing else None
        result = original_update(self, **data)
        if pausing:
            self._pause_collection = pause
        return result

    sub_cls._update = _update

    original_export = sub_cls._export

    def _export(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = original_export(self, expand=expand)
        data["pause_collection"] = getattr(self, "_pause_collection", None)
        if self.cancel_at_period_end and self.status not in ("canceled", "incomplete_expired"):
            data["cancel_at"] = _period_end(self)
        return data

    sub_cls._export = _export


def _void_renewal(subscription: Any) -> Any:
    """The period's invoice, made and voided at once (pause_collection "void")."""
    previous = subscription.latest_invoice
    invoice = resources.Invoice(
        customer=subscription.customer,
        subscription=subscription.id,
        items=list(subscription.items._list),
        tax_percent=subscription.tax_percent,
        default_tax_rates=[tr.id for tr in (subscription.default_tax_rates or [])],
        date=subscription.current_period_start,
    )
    invoice._finalize()
    invoice._voided = True
    invoice.status_transitions["voided_at"] = int(time.time())
    invoice.billing_reason = "subscription_cycle"
    events._soon("invoice.voided", invoice)
    events._soon("customer.subscription.updated", subscription, {"latest_invoice": previous})
    return invoice


async def renew(request: web.Request, subscription_id: str) -> web.Response | None:
    """The period's end for a paused subscription or one set to cancel; else None."""
    data = server.unflatten_data(await request.post())
    subscription = resources.Subscription._api_retrieve(subscription_id)
    at = int(data.get("at") or _period_end(subscription))
    if subscription.cancel_at_period_end:
        resources.Subscription._api_delete(subscription_id)
        resources.store.dump_to_disk()
        return server.json_response(subscription._export())
    pause = getattr(subscription, "_pause_collection", None)
    if pause is None:
        return None
    if pause["resumes_at"] is not None and at >= pause["resumes_at"]:
        # The pause has run its course: Stripe clears it, and this period is billed.
        subscription._pause_collection = None
        return None
    if pause["behavior"] != "void":
        raise UserError(500, "Not implemented: only pause_collection[behavior]=void")
    invoice = _void_renewal(subscription)
    resources.store.dump_to_disk()
    return server.json_response(invoice._export())


async def route(request: web.Request) -> web.StreamResponse | None:
    parts = request.path.strip("/").split("/")
    if (
        parts[:2] == ["_simulator", "subscriptions"]
        and parts[3:] == ["renew"]
        and request.method == "POST"
    ):
        return await renew(request, parts[2])
    return None


def apply() -> None:
    patch_subscriptions()
