"""Signed Stripe webhook deliveries ingested per second, as a ratio against a bare endpoint.

`python -m bench webhooks [--quick]`. Two servers run one at a time under
the same gunicorn settings (bench/harness.py), on one fresh, migrated
PostgreSQL database:

* bare: ``bench.bare_webhook_app:app`` -- verifies the signature on the raw
  body and inserts the same stripe_events row, nothing else (the baseline);
* ours: the real app (``wsgi:app``) in its production mode (REDIS_URL set):
  verify, store the delivery (deduplicated by event id), and after the
  commit wake the drain task on Redis (one message while none is queued;
  no worker runs here, so the queue shows how many wake-ups were sent).

Every delivery is a distinct ``payment_intent.succeeded`` event of a
realistic size, signed as Stripe signs it. Two measurements:

1. throughput: closed loop, ``--connections`` keep-alive clients, rounds
   alternating between the two servers; events/s of ours and of bare, and
   the ratio (target >= 0.6);
2. latency at a steady ``--rate`` (50 events/s): an open-loop schedule,
   each latency measured from the moment the delivery was due, so a slow
   server is not flattered by sending less (target p99 < 300 ms).

Afterwards the rows in stripe_events are counted against the 2xx answers.
The database and the Redis queue are removed at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import (
    HOST,
    REDIS_URL,
    Outcome,
    Send,
    Server,
    Tally,
    app_environment,
    closed_loop,
    flask,
    free_port,
    gunicorn_command,
    machine_load,
    paced,
    postgres_database,
    running,
    start_process,
    wait_until,
    write_results,
)

SECRET = "whsec_bench_" + "w" * 24
PATH = "/webhooks/stripe"


# -- deliveries ------------------------------------------------------------------

# A payment_intent.succeeded event shaped (and sized, about 2.4 kB) like Stripe's.
_OBJECT = {
    "id": "pi_%(n)s",
    "object": "payment_intent",
    "amount": 1000,
    "amount_capturable": 0,
    "amount_received": 1000,
    "allowed_payment_method_types": ["card"],
    "capture_method": "automatic_async",
    "client_secret": "pi_%(n)s_secret_" + "s" * 24,
    "confirmation_method": "automatic",
    "created": 0,
    "currency": "usd",
    "customer": "cus_" + "c" * 14,
    "description": None,
    "last_payment_error": None,
    "latest_charge": "ch_%(n)s",
    "livemode": False,
    "metadata": {
        "donation_attempt": "a" * 32,
        "frequency": "once",
        "gift_amount": "1000",
        "fee_cover_amount": "0",
        "campaign": "",
    },
    "next_action": None,
    "payment_method": "pm_" + "m" * 24,
    "payment_method_options": {
        "card": {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": "automatic",
        }
    },
    "processing": None,
    "receipt_email": None,
    "setup_future_usage": None,
    "shipping": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "status": "succeeded",
    "transfer_data": None,
    "transfer_group": None,
}


def _template() -> str:
    event = {
        "id": "evt_%(n)s",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": 1234567890,
        "data": {"object": _OBJECT, "previous_attributes": {"status": "processing"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": "checkout-" + "k" * 32},
        "type": "payment_intent.succeeded",
    }
    text = json.dumps(event, indent=2, sort_keys=True)
    return text.replace("1234567890", "%(created)d")


TEMPLATE = _template()


class Deliveries:
    """Distinct, freshly signed deliveries (thread-safe)."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._run = secrets.token_hex(4)

    def next(self) -> tuple[bytes, str]:
        n = f"{self._run}{next(self._counter):010d}"
        now = int(time.time())
        body = (TEMPLATE % {"n": n, "created": now}).encode()
        mac = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        return body, f"t={now},v1={mac}"


# -- load -----------------------------------------------------------------------


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, signature: str) -> int:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
            try:
                self.conn.request(
                    "POST",
                    PATH,
                    body=body,
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": signature,
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    },
                )
                response = self.conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def sender(port: int, deliveries: Deliveries) -> Send:
    """One keep-alive client posting a fresh signed delivery per call."""
    client = Client(port)

    def send() -> int | None:
        body, signature = deliveries.next()
        try:
            return client.post(body, signature)
        except (OSError, http.client.HTTPException):
            return None

    return send


# -- servers and the database ------------------------------------------------------------


def start(
    name: str, app_spec: str, env: dict[str, str], port: int, threads: int, workdir: Path
) -> Server:
    server = start_process(name, gunicorn_command(app_spec, port, threads), env, port, workdir)
    # An unsigned delivery is refused, as it must be: the server is up.
    wait_until(server, lambda: Client(port).post(b"{}", "t=1,v1=0") == 400)
    return server


def stored_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM stripe_events").fetchone()
    return int(row[0]) if row else 0


def clear_queue() -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    queued = int(client.llen("celery"))  # type: ignore[arg-type]
    client.flushdb()  # the benchmarks' own database: the queue and the drain's wake gate
    return queued


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Outcome:
    if args.quick:
        args.rounds, args.seconds, args.rate_seconds, args.warmup = 2, 8.0, 6.0, 1.0
    leg = args.seconds / args.rounds
    deliveries = Deliveries()
    with (
        tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp,
        postgres_database() as database_url,
    ):
        workdir = Path(tmp)
        clear_queue()
        try:
            with running() as servers:
                ports = {"bare": free_port(), "ours": free_port()}
                envs = {
                    k: app_environment(
                        workdir, database_url, p, STRIPE_WEBHOOK_SECRET=SECRET, REDIS_URL=REDIS_URL
                    )
                    for k, p in ports.items()
                }
                flask(envs["ours"], "db", "upgrade")
                specs = {"bare": "bench.bare_webhook_app:app", "ours": "wsgi:app"}
                for key in ("bare", "ours"):
                    servers[key] = start(
                        key, specs[key], envs[key], ports[key], args.threads, workdir
                    )
                print(
                    f"bench webhooks: PostgreSQL, gunicorn 1 worker x {args.threads} threads, "
                    f"{args.connections} clients, {args.rounds} rounds of {leg:.0f} s each; "
                    f"load average {machine_load()}"
                )

                def senders(key: str) -> Any:
                    return lambda: sender(servers[key].port, deliveries)

                warmed = 0
                for key in ("bare", "ours"):  # warm-up, not measured (its rows are counted)
                    warmed += closed_loop(senders(key), args.connections, args.warmup).ok
                throughput = {"bare": Tally(), "ours": Tally()}
                for round_ in range(args.rounds):
                    order = ("bare", "ours") if round_ % 2 == 0 else ("ours", "bare")
                    for key in order:
                        tally = closed_loop(senders(key), args.connections, leg)
                        throughput[key].merge(tally)
                        print(
                            f"  round {round_ + 1} {key:4}: {tally.rate:7.1f} events/s "
                            f"({tally.errors} errors)"
                        )
                steady = {
                    key: paced(senders(key), args.rate, args.rate_seconds)
                    for key in ("ours", "bare")
                }
                ok = warmed + sum(t.ok for t in [*throughput.values(), *steady.values()])
                rows = stored_rows(database_url)
        finally:
            queued = clear_queue()

    ratio = throughput["ours"].rate / throughput["bare"].rate if throughput["bare"].rate else 0
    report: dict[str, Any] = {
        "settings": vars(args),
        "throughput": {key: t.summary() for key, t in throughput.items()},
        "ratio": round(ratio, 3),
        "steady": {key: dict(t.summary(), rate=args.rate) for key, t in steady.items()},
        "rows_stored": rows,
        "deliveries_answered_2xx": ok,
        "tasks_queued_by_ours": queued,
    }
    write_results("webhooks", report)

    ours, bare = report["throughput"]["ours"], report["throughput"]["bare"]
    print(
        f"throughput  ours {ours['per_s']:7.1f} events/s   "
        f"bare {bare['per_s']:7.1f} events/s   "
        f"ratio {ratio:.2f} (target >= {args.target})"
    )
    for key in ("ours", "bare"):
        s = report["steady"][key]
        print(
            f"at {args.rate:g}/s  {key:4} p50 {s['p50_ms']:6.1f} ms   p99 {s['p99_ms']:6.1f} ms   "
            f"max {s['max_ms']:6.1f} ms   ({s['errors']} errors; target p99 < 300 ms)"
        )
    print(
        f"rows stored {rows} = deliveries answered 2xx {ok}: {'yes' if rows == ok else 'NO'}; "
        f"processing tasks queued by ours: {queued}"
    )
    p99 = report["steady"]["ours"]["p99_ms"]
    outcome = Outcome(
        0,
        {
            "webhook ingest ours/bare": (ratio, f">= {args.target:g}"),
            f"webhook p99 ms at {args.rate:g}/s": (p99, "< 300"),
        },
    )
    if rows != ok or any(t.errors for t in [*throughput.values(), *steady.values()]):
        outcome.status = 2
    elif ratio < args.target or not p99 < 300:
        outcome.status = 1
    return outcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 25 s)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (1 worker)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--seconds",
        type=float,
        default=24.0,
        help="closed-loop seconds per server, split across rounds",
    )
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=50.0, help="steady deliveries per second")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--target", type=float, default=0.6)
