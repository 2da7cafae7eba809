"""A burst of signed Stripe webhooks: every one stored, every one processed, none twice.

`python -m bench burst [--events 20000] [--duplicates 0.05]`. The real app
in production mode (gunicorn, ``REDIS_URL`` set, a Celery worker) on a
fresh PostgreSQL database receives ``--events`` distinct signed events as
fast as ``--connections`` keep-alive clients on loopback can send them, plus
a share of them delivered a second time (Stripe redelivers), in random
order. Then it waits for the worker to process the queue and checks, in the
database:

* one ``stripe_events`` row per distinct event, none missing, none doubled;
* the deliveries counted on the rows equal the deliveries answered 2xx;
* every row processed (``processed_at`` set), none failed or parked.

The events are of a type the app records and acknowledges without calling
Stripe (``customer.updated``), so the run measures ingest and processing,
not the simulator. Reports ingest and end-to-end rates. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import (
    REDIS_URL,
    Outcome,
    app_environment,
    flask,
    free_port,
    gunicorn_command,
    machine_load,
    running,
    start_process,
    write_results,
)
from bench.webhooks import SECRET, Client, clear_queue, start


def delivery(event_id: str) -> tuple[bytes, str]:
    now = int(time.time())
    body = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": now,
            "data": {"object": {"id": "cus_" + event_id[4:], "object": "customer"}},
            "livemode": False,
            "pending_webhooks": 1,
            "type": "customer.updated",
        }
    ).encode()
    mac = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={now},v1={mac}"


def send_all(port: int, ids: list[str], connections: int) -> tuple[int, int]:
    """Deliver every id in ``ids`` (repeats included); (answered 2xx, other answers)."""
    lock = threading.Lock()
    position = iter(ids)
    counts = [0, 0]

    def work() -> None:
        client = Client(port)
        while True:
            with lock:
                event_id = next(position, None)
            if event_id is None:
                break
            body, signature = delivery(event_id)
            try:
                status = client.post(body, signature)
            except OSError:
                status = 0
            with lock:
                counts[0 if 200 <= status < 300 else 1] += 1
        client.close()

    threads = [threading.Thread(target=work) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts[0], counts[1]


def state(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT stripe_event_id), coalesce(sum(deliveries), 0),"
            " count(processed_at), count(parked_at), count(last_error)"
            " FROM stripe_events"
        ).fetchone()
    assert row is not None
    keys = ("rows", "distinct", "deliveries", "processed", "parked", "failed")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def run(args: argparse.Namespace) -> Outcome:
    run_id = secrets.token_hex(4)
    ids = [f"evt_{run_id}{n:08d}" for n in range(args.events)]
    repeats = random.Random(7).sample(ids, int(len(ids) * args.duplicates))
    sequence = ids + repeats
    random.Random(11).shuffle(sequence)
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        workdir = Path(tmp)
        from bench.harness import postgres_database

        with postgres_database() as database_url, running() as servers:
            port = free_port()
            env = app_environment(
                workdir,
                database_url,
                port,
                STRIPE_WEBHOOK_SECRET=SECRET,
                REDIS_URL=REDIS_URL,
                LOG_FORMAT="text",
            )
            flask(env, "db", "upgrade")
            clear_queue()
            servers["web"] = start("web", "wsgi:app", env, port, args.threads, workdir)
            worker = [
                *gunicorn_command("x", 0)[:1],
                "-m",
                "celery",
                "--app",
                "wsgi:celery",
                "worker",
                "--concurrency",
                str(args.worker_concurrency),
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ]
            servers["worker"] = start_process("worker", worker, env, 0, workdir)
            print(
                f"bench burst: {args.events} events + {len(repeats)} redeliveries, "
                f"{args.connections} clients, gunicorn 1 worker x {args.threads} threads, "
                f"Celery x {args.worker_concurrency}; load average {machine_load()}"
            )
            started = time.monotonic()
            answered, refused = send_all(port, sequence, args.connections)
            sent = time.monotonic() - started
            deadline = time.monotonic() + args.timeout
            seen = state(database_url)
            while seen["processed"] < seen["rows"] and time.monotonic() < deadline:
                time.sleep(1)
                seen = state(database_url)
            done = time.monotonic() - started
    report: dict[str, Any] = {
        "settings": vars(args),
        "deliveries_sent": len(sequence),
        "answered_2xx": answered,
        "other_answers": refused,
        "ingest_seconds": round(sent, 2),
        "ingest_per_s": round(len(sequence) / sent, 1),
        "all_processed_seconds": round(done, 2),
        "database": seen,
    }
    write_results("burst", report)
    checks = {
        "every distinct event stored once": seen["rows"] == seen["distinct"] == args.events,
        "deliveries on the rows = answered 2xx": seen["deliveries"] == answered,
        "every delivery answered 2xx": refused == 0,
        "every event processed": seen["processed"] == args.events,
        "none failed or parked": seen["parked"] == 0 and seen["failed"] == 0,
    }
    print(
        f"ingest: {len(sequence)} deliveries in {sent:.1f} s ({report['ingest_per_s']}/s); "
        f"all processed after {done:.1f} s"
    )
    for text, held in checks.items():
        print(f"  {'ok ' if held else 'NO '} {text}")
    outcome = Outcome(
        0 if all(checks.values()) else 2,
        {"burst deliveries/s (all stored, processed once)": (report["ingest_per_s"], "")},
    )
    return outcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--duplicates", type=float, default=0.05, help="share delivered twice")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (1 worker)")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for processing")
