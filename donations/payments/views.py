"""The Stripe webhook endpoint."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from donations.db import commit
from donations.extensions import csrf
from donations.observability import webhook_event
from donations.payments.gateway import InvalidWebhook
from donations.payments.services import gateway
from donations.payments.tasks import drain_stripe_events
from donations.payments.webhooks import process_event, store_event
from donations.security import takes_json

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__)

MAX_WEBHOOK_BYTES = 256 * 1024


# Exempt from CSRF: Stripe cannot hold a session or token; each delivery is
# authenticated instead by its HMAC signature over the raw body.
@bp.post("/webhooks/stripe")
@csrf.exempt
@takes_json
def stripe_webhook() -> tuple[str, int]:
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=False, as_text=False)
    if request.content_length is None and len(raw) >= MAX_WEBHOOK_BYTES:
        # A streamed (chunked) body is cut off at MAX_CONTENT_LENGTH, not refused.
        raise RequestEntityTooLarge()
    try:
        event = gateway().parse_webhook(
            raw, request.headers.get("Stripe-Signature"), int(time.time())
        )
    except InvalidWebhook as exc:
        log.warning("rejected webhook: %s", exc)
        return "invalid webhook\n", 400
    if event.livemode != gateway().livemode:
        log.warning(
            "ignoring %s event %s: livemode does not match our key",
            "live" if event.livemode else "test",
            event.id,
        )
        return "ignored: livemode mismatch\n", 200
    row = store_event(event, raw.decode("utf-8"))
    already_processed = row.processed_at is not None
    webhook_event(event.type, "duplicate" if row.deliveries > 1 else "received")
    row_id = row.id
    if current_app.config["SETTINGS"].background_inline:
        commit()
        if not already_processed:
            # Inline: a failure answers 500 so Stripe delivers again. The
            # failure is stored on the event (retries, parking), so it is
            # expected here, not an unhandled error.
            try:
                process_event(row_id)
            except Exception as exc:
                log.warning("Stripe event %s failed, Stripe will retry: %r", event.id, exc)
                return "failed, retry later\n", 500
        return "ok\n", 200
    if not already_processed:
        drain_stripe_events.wake_on_commit()
    commit()
    return "queued\n", 200
