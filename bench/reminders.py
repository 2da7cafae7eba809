"""Reminders dispatched per second to a local SMTP server, as a ratio against a bare loop.

* bare (the baseline): the same messages, built by the same renderer (the
  outbox's ``render_email``, with the same signed links and headers) and
  sent one after another over one ``smtplib`` connection -- no database,
  no claims, no bookkeeping.
* ours: that many due reminder rows in a fresh, migrated database, sent by
  ``send_due_reminders()`` exactly as beat or the embedded scheduler runs it
  (claim, check, queue, commit, then deliver each batch over one
  connection, recording every attempt), timed until the last message has
  been accepted by the server.

The SMTP server is aiosmtpd's ``Sink`` handler in its own process on
loopback. Rounds alternate the order; the headline is the median of ours/s
over the median of bare/s, against ``--target`` (0.5).

    python -m bench reminders [--count N] [--rounds R] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from bench.harness import HOST, Outcome, app_environment, database, free_port, machine_load


@contextmanager
def sink_server() -> Iterator[str]:
    """aiosmtpd accepting and discarding everything, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"{HOST}:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex((HOST, port)) == 0:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the SMTP sink did not start")
            time.sleep(0.05)
        yield f"smtp://{HOST}:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def make_app(database_url: str, smtp_url: str, tmp: Path):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from donations import create_app

    env = app_environment(
        tmp,
        database_url,
        BASE_URL="https://news.example",
        SMTP_URL=smtp_url,
        MAIL_FROM="Newsroom <support@news.example>",
    )
    # TESTING keeps the embedded scheduler from starting; nothing else differs.
    app = create_app(env, TESTING=True)
    with app.app_context():
        upgrade()
    return app


def seed(app, count: int, tag: str) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from donations.db import db, utcnow
    from donations.mail.suppression import address_hash
    from donations.reminders.models import Reminder, ReminderStatus
    from donations.supporters.models import Frequency

    due = utcnow() - timedelta(minutes=1)
    with app.app_context():
        db.session.execute(
            insert(Reminder),
            [
                {
                    "email": f"{tag}-{n}@example.org",
                    "email_key": f"{tag}-{n}@example.org",
                    "address_hash": address_hash(f"{tag}-{n}@example.org"),
                    "locale": "en",
                    "frequency": Frequency.MONTHLY,
                    "currency": "EUR",
                    "amount": 1000,
                    "months": 1,
                    "due_at": due,
                    "period": f"{due:%Y-%m}",
                    "status": ReminderStatus.PENDING,
                    "created_at": due - timedelta(days=30),
                    "updated_at": due,
                }
                for n in range(count)
            ],
        )
        db.session.commit()
        db.session.remove()


def run_ours(app, count: int, tag: str, profile: cProfile.Profile | None = None) -> float:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from donations.db import db
    from donations.mail.models import EmailMessage, EmailStatus
    from donations.reminders.tasks import send_due_reminders

    seed(app, count, tag)
    with app.app_context():
        if profile:
            profile.enable()
        started = time.perf_counter()
        result = send_due_reminders()
        took = time.perf_counter() - started
        if profile:
            profile.disable()
        sent = db.session.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(
                EmailMessage.status == EmailStatus.SENT, EmailMessage.to_address.like(f"{tag}-%")
            )
        )
        db.session.remove()
    if (result.sent, sent) != (count, count):
        raise SystemExit(f"ours sent {result.sent} (outbox says {sent}), expected {count}")
    return took


def run_bare(app, count: int, tag: str, smtp_url: str) -> float:  # type: ignore[no-untyped-def]
    from urllib.parse import urlsplit

    from donations.mail.models import EmailMessage
    from donations.mail.sender import render_email
    from donations.mail.suppression import address_hash
    from donations.reminders.models import Reminder
    from donations.reminders.services import ask_url, unsubscribe_headers, unsubscribe_url
    from donations.supporters.models import Frequency

    parts = urlsplit(smtp_url)
    with app.app_context(), app.test_request_context():
        started = time.perf_counter()
        client = smtplib.SMTP(parts.hostname, parts.port, timeout=30)
        for n in range(count):
            address = f"{tag}-{n}@example.org"
            hashed = address_hash(address)
            source = Reminder(id=n + 1, frequency=Frequency.MONTHLY, currency="EUR", amount=1000)
            row = EmailMessage(
                id=n + 1,
                dedupe_key=f"reminder:{n}",
                template="reminder",
                to_address=address,
                to_name="",
                locale="en",
                headers=unsubscribe_headers(hashed),
                context={
                    "signed_up_at": "2026-10-28T09:30:00+00:00",
                    "frequency": "monthly",
                    "currency": "EUR",
                    "amount": 1000,
                    "ask_url": ask_url(source),
                    "unsubscribe_url": unsubscribe_url(hashed),
                },
            )
            client.send_message(render_email(row))
        client.quit()
        return time.perf_counter() - started


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=2000, help="reminders per round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating order (3)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile our side, print the top 25"
    )


def run(args: argparse.Namespace) -> Outcome:
    print(f"bench reminders: {args.database}; load average {machine_load()}")
    ours: list[float] = []
    bare: list[float] = []
    profile = cProfile.Profile() if args.profile else None
    with (
        tempfile.TemporaryDirectory(prefix="bench-reminders-") as tmp_name,
        sink_server() as smtp_url,
    ):
        tmp = Path(tmp_name)
        with database(args.database, tmp) as url:
            app = make_app(url, smtp_url, tmp)
            run_ours(app, 50, "warm-ours")
            run_bare(app, 50, "warm-bare", smtp_url)
            for round_no in range(args.rounds):
                order = ("ours", "bare") if round_no % 2 == 0 else ("bare", "ours")
                for side in order:
                    tag = f"{side}{round_no}"
                    if side == "ours":
                        ours.append(args.count / run_ours(app, args.count, tag, profile))
                    else:
                        bare.append(args.count / run_bare(app, args.count, tag, smtp_url))
                print(
                    f"round {round_no + 1}: ours {ours[-1]:8.1f}/s   bare {bare[-1]:8.1f}/s",
                    flush=True,
                )
            with app.app_context():
                from donations.db import db

                db.engine.dispose()
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"\nreminders dispatched to SMTP ({args.database}, {args.count} per round):")
    print(f"  ours  median {statistics.median(ours):8.1f}/s  (send_due_reminders, inline delivery)")
    print(f"  bare  median {statistics.median(bare):8.1f}/s  (render + send over one connection)")
    verdict = "OK" if ratio >= args.target else "BELOW"
    print(f"  ratio {ratio:.2f}x  (target >= {args.target:.2f}x): {verdict}")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    return Outcome(
        0 if ratio >= args.target else 1, {"reminders ours/bare": (ratio, f">= {args.target:g}")}
    )
