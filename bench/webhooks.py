"""Signed Stripe webhook deliveries ingested per second, as a ratio against a bare endpoint.

`python -m bench webhooks [--quick]`. Two servers run one at a time under
the same gunicorn settings as bench/support_page.py, on one fresh, migrated
PostgreSQL database:

* bare: ``bench.bare_webhook_app:app`` -- verifies the signature on the raw
  body and inserts the same stripe_events row, nothing else (the baseline);
* ours: the real app (``wsgi:app``) in its production mode (REDIS_URL set):
  verify, store the delivery (deduplicated by event id), queue its
  processing task on Redis after the commit.

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
import math
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.support_page import (
    APP_VARIABLES,
    HOST,
    RESULTS,
    ROOT,
    Server,
    free_port,
    gunicorn_command,
)

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
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


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: Tally) -> None:
        self.ok += other.ok
        self.errors += other.errors
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.latencies += other.latencies
        self.seconds += other.seconds

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] * 1000


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


def closed_loop(port: int, deliveries: Deliveries, connections: int, seconds: float) -> Tally:
    """As fast as ``connections`` clients can go, one delivery at a time each."""
    tallies = [Tally() for _ in range(connections)]
    start = threading.Barrier(connections + 1)
    deadline = 0.0

    def work(tally: Tally) -> None:
        client = Client(port)
        start.wait()
        while time.monotonic() < deadline:
            body, signature = deliveries.next()
            t0 = time.monotonic()
            try:
                status = client.post(body, signature)
            except (OSError, http.client.HTTPException):
                tally.errors += 1
                continue
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                tally.ok += 1
                tally.latencies.append(time.monotonic() - t0)
            else:
                tally.errors += 1
        client.close()

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in tallies]
    for thread in threads:
        thread.start()
    t0 = time.monotonic()
    deadline = t0 + seconds
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    total.seconds = time.monotonic() - t0
    return total


def paced(
    port: int, deliveries: Deliveries, rate: float, seconds: float, clients: int = 16
) -> Tally:
    """``rate`` deliveries a second on a fixed schedule; latency counted from each due time."""
    slots = int(rate * seconds)
    tallies = [Tally() for _ in range(clients)]
    t0 = time.monotonic() + 0.2

    def work(index: int, tally: Tally) -> None:
        client = Client(port)
        for slot in range(index, slots, clients):
            due = t0 + slot / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            body, signature = deliveries.next()
            try:
                status = client.post(body, signature)
            except (OSError, http.client.HTTPException):
                tally.errors += 1
                continue
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                tally.ok += 1
                tally.latencies.append(time.monotonic() - due)
            else:
                tally.errors += 1
        client.close()

    threads = [
        threading.Thread(target=work, args=(i, t), daemon=True) for i, t in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    total.seconds = max(time.monotonic() - t0, 1e-9)
    return total


# -- servers and the database ------------------------------------------------------------


def create_database() -> tuple[str, str]:
    name = f"donations_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(workdir: Path, database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106 -- a fake test-mode key
        STRIPE_PUBLISHABLE_KEY="pk_test_bench",
        STRIPE_WEBHOOK_SECRET=SECRET,
        # Nothing listens there: ingesting a delivery never calls Stripe.
        STRIPE_API_BASE="http://127.0.0.1:9",
        BASE_URL=f"http://{HOST}:{port}",
        REDIS_URL=REDIS_URL,
        INSTANCE_PATH=str(workdir / "instance"),
        MAIL_DIR=str(workdir / "mail"),
        PYTHONUNBUFFERED="1",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit("bench: `flask db upgrade` failed")


def start(
    name: str, app_spec: str, env: dict[str, str], port: int, threads: int, workdir: Path
) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            gunicorn_command(app_spec, port, threads),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, PATH, port, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {name} exited:\n{server.log_tail()}")
        with suppress(OSError):
            if Client(port).post(b"{}", "t=1,v1=0") == 400:  # refused, as it must be
                return server
        time.sleep(0.1)
    raise SystemExit(f"bench: {name} did not come up:\n{server.log_tail()}")


def stored_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM stripe_events").fetchone()
    return int(row[0]) if row else 0


def clear_queue() -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    queued = int(client.llen("celery"))  # type: ignore[arg-type]
    client.delete("celery")
    return queued


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    deliveries = Deliveries()
    name, database_url = create_database()
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    servers: dict[str, Server] = {}
    try:
        ports = {"bare": free_port(), "ours": free_port()}
        envs = {k: environment(workdir, database_url, p) for k, p in ports.items()}
        migrate(envs["ours"])
        specs = {"bare": "bench.bare_webhook_app:app", "ours": "wsgi:app"}
        for key in ("bare", "ours"):
            servers[key] = start(key, specs[key], envs[key], ports[key], args.threads, workdir)
        print(
            f"bench webhooks: PostgreSQL, gunicorn 1 worker x {args.threads} threads, "
            f"{args.connections} clients, {args.rounds} rounds of {args.leg:.0f} s each"
        )
        warmed = 0
        for key in ("bare", "ours"):  # warm-up, not measured (its rows are counted)
            warmed += closed_loop(servers[key].port, deliveries, args.connections, args.warmup).ok
        throughput = {"bare": Tally(), "ours": Tally()}
        for round_ in range(args.rounds):
            order = ("bare", "ours") if round_ % 2 == 0 else ("ours", "bare")
            for key in order:
                tally = closed_loop(servers[key].port, deliveries, args.connections, args.leg)
                throughput[key].merge(tally)
                print(
                    f"  round {round_ + 1} {key:4}: {tally.rate:7.1f} events/s "
                    f"({tally.errors} errors)"
                )
        steady = {
            key: paced(servers[key].port, deliveries, args.rate, args.rate_seconds)
            for key in ("ours", "bare")
        }
        ok = warmed + sum(t.ok for t in [*throughput.values(), *steady.values()])
        rows = stored_rows(database_url)
    finally:
        for server in servers.values():
            server.stop()
        queued = clear_queue()
        drop_database(name)

    ratio = throughput["ours"].rate / throughput["bare"].rate if throughput["bare"].rate else 0
    report: dict[str, Any] = {
        "benchmark": "webhooks",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "throughput": {
            key: {
                "events_per_s": round(t.rate, 1),
                "ok": t.ok,
                "errors": t.errors,
                "p50_ms": round(t.percentile_ms(50), 1),
                "p99_ms": round(t.percentile_ms(99), 1),
            }
            for key, t in throughput.items()
        },
        "ratio": round(ratio, 3),
        "steady": {
            key: {
                "rate": args.rate,
                "ok": t.ok,
                "errors": t.errors,
                "p50_ms": round(t.percentile_ms(50), 1),
                "p99_ms": round(t.percentile_ms(99), 1),
                "max_ms": round(max(t.latencies, default=math.nan) * 1000, 1),
            }
            for key, t in steady.items()
        },
        "rows_stored": rows,
        "deliveries_answered_2xx": ok,
        "tasks_queued_by_ours": queued,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"webhooks-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")

    ours, bare = report["throughput"]["ours"], report["throughput"]["bare"]
    print(
        f"throughput  ours {ours['events_per_s']:7.1f} events/s   "
        f"bare {bare['events_per_s']:7.1f} events/s   "
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
    passed = (
        ratio >= args.target
        and report["steady"]["ours"]["p99_ms"] < 300
        and rows == ok
        and not any(t.errors for t in [*throughput.values(), *steady.values()])
    )
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench webhooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.rate_seconds, args.warmup = 2, 8.0, 6.0, 1.0
    args.leg = args.seconds / args.rounds
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
