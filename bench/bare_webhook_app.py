"""The baseline for bench/webhooks.py: verify a signed delivery, insert its row, nothing else.

The same signature check as the real endpoint (the gateway's parse_webhook
on the raw bytes) and the same INSERT into stripe_events, on the same
PostgreSQL database, through a plain SQLAlchemy engine: no extensions, no
session, no dedupe lookup, no task queued.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from flask import Flask, request
from sqlalchemy import create_engine, insert

from donations.payments.gateway import InvalidWebhook
from donations.payments.models import StripeEvent
from donations.payments.stripe_gateway import StripeGateway

url = os.environ["DATABASE_URL"]
if url.startswith("postgresql://"):
    url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
engine = create_engine(url)
gateway = StripeGateway(
    secret_key="sk_test_bench",  # noqa: S106 -- never used to call Stripe
    publishable_key="pk_test_bench",
    webhook_secret=os.environ["STRIPE_WEBHOOK_SECRET"],
)
table = StripeEvent.__table__

app = Flask(__name__)


@app.post("/webhooks/stripe")
def stripe_webhook() -> tuple[str, int]:
    raw = request.get_data(cache=False)
    try:
        event = gateway.parse_webhook(
            raw, request.headers.get("Stripe-Signature"), int(time.time())
        )
    except InvalidWebhook:
        return "invalid webhook\n", 400
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(table).values(
                stripe_event_id=event.id,
                type=event.type,
                livemode=event.livemode,
                object_id=event.object_id,
                payload=raw.decode("utf-8"),
                stripe_created_at=datetime.fromtimestamp(event.created, UTC),
                received_at=now,
                deliveries=1,
                attempts=0,
            )
        )
    return "ok\n", 200
