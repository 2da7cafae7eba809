"""The production topology under load: ``python -m devtools.production --load``.

Issue #15's soak: ten times the busiest public fundraising day we know of
(Wikimedia's best day averaged about 1.7 donations a second), so 17
checkouts a second and 1,000 views of the ask a second, with the webhooks
they cause, for 10 minutes, on loopback. Both streams are paced (open loop:
each request is due at a fixed time and its latency counts from then, so a
slow server is not flattered by being sent less):

* views: anonymous ``GET /support``, each client on one keep-alive
  connection (bench/loadgen.py);
* checkouts: a new reader each, as ``give()``: the details page, the form
  posted (our server creates the PaymentIntent with its idempotency key), the
  pay page, the card confirmed at the simulator as Stripe.js would, then the
  thank-you page; a distinct email and amount per checkout.

The simulator's webhooks go to ``web`` and the worker processes them. When
the load stops it waits (bounded) for the queue to drain, then checks that
nothing was lost or doubled: every succeeded PaymentIntent at the simulator
is in the ledger once, succeeded, for the amount the reader chose; every
donor got exactly one receipt at the SMTP server and the outbox holds
nothing unsent; every stored event was processed; no 5xx and no error in
any log. Exit 0 when all of that held at the target rates, 1 when anything
failed, was lost or doubled, 2 when it all held but the rates achieved fell
short of the target (the machine saturated).

For this run only, ``CHECKOUT_RATE_LIMIT`` is raised (``SETTINGS``): every
reader comes from 127.0.0.1, which the default (10 a minute per address)
would refuse after the tenth checkout. Nothing else differs from production.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import requests

from bench import harness, loadgen

if TYPE_CHECKING:
    from devtools.production import Topology

SETTINGS = {"CHECKOUT_RATE_LIMIT": "1000000 per minute"}
STEPS = ("details", "create", "pay", "confirm", "thanks")
# A machine that cannot keep up falls behind the schedule; what is that late
# when the run should end is not sent (the report says how much).
LATE = 30.0
SHORT_OF_TARGET = 0.95  # a rate achieved below 95 % of the target is reported as short
CARD = {"number": "4242424242424242", "exp_month": "12", "exp_year": "34", "cvc": "123"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("load (issue #15's soak)")
    group.add_argument("--load", action="store_true", help="run the load test instead")
    group.add_argument("--minutes", type=float, default=10.0)
    group.add_argument("--checkouts-per-second", type=float, default=17.0)
    group.add_argument("--views-per-second", type=float, default=1000.0)
    group.add_argument(
        "--drain-seconds", type=float, default=300.0, help="how long the queue may take to drain"
    )


@dataclass
class Gift:
    email: str
    amount: int  # minor units, USD
    intent: str | None = None


class Failed(Exception):
    pass


@dataclass
class Reader:
    """A paced checkout client: a new reader (cookies) per checkout; Stripe.js at the simulator."""

    base: str
    simulator: str
    numbers: itertools.count[int]
    run: str
    tallies: dict[str, harness.Tally] = field(default_factory=dict)
    gifts: list[Gift] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tallies = {step: harness.Tally() for step in STEPS}
        self.stripe = requests.Session()

    def _step(
        self,
        step: str,
        send: Callable[[], requests.Response],
        expect: int,
        check: Callable[[requests.Response], bool] = lambda _: True,
    ) -> requests.Response:
        tally, started = self.tallies[step], time.monotonic()
        try:
            answer = send()
        except requests.RequestException as exc:
            tally.record(None, started)
            self.problems.append(f"{step}: {exc!r}")
            raise Failed from exc
        tally.statuses[answer.status_code] = tally.statuses.get(answer.status_code, 0) + 1
        if answer.status_code != expect or not check(answer):
            tally.errors += 1
            self.problems.append(f"{step}: {answer.status_code} {answer.text[:200]!r}")
            raise Failed
        tally.ok += 1
        tally.latencies.append(time.monotonic() - started)
        return answer

    def __call__(self) -> int | None:
        number = next(self.numbers)
        gift = Gift(f"load-{self.run}-{number}@example.org", (5 + number % 96) * 100)
        self.gifts.append(gift)
        browser = requests.Session()
        try:
            page = self._step(
                "details",
                lambda: browser.get(
                    f"{self.base}/support/checkout",
                    params={
                        "frequency": "once",
                        "amount": str(gift.amount // 100),
                        "currency": "USD",
                    },
                    timeout=60,
                ),
                200,
            )
            fields = dict(re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', page.text))
            started = self._step(
                "create",
                lambda: browser.post(
                    f"{self.base}/support/checkout",
                    data={
                        **{k: fields.get(k, "") for k in ("csrf_token", "attempt", "amount")},
                        "frequency": "once",
                        "currency": "USD",
                        "email": gift.email,
                        "name": f"Load {number}",
                        "country": "GB",
                    },
                    allow_redirects=False,
                    timeout=60,
                ),
                303,
            )
            pay_url = self.base + started.headers["Location"].removeprefix(self.base)
            pay = self._step(
                "pay", lambda: browser.get(pay_url, allow_redirects=False, timeout=60), 200
            )
            secret = re.search(r'data-client-secret="([^"]+)"', pay.text)
            if secret is None:
                self.problems.append("pay: no client secret")
                return None
            gift.intent = secret.group(1).split("_secret_")[0]
            self._step(
                "confirm",
                lambda: self.stripe.post(
                    f"{self.simulator}/v1/payment_intents/{gift.intent}/confirm",
                    json={
                        "key": "pk_test_local",
                        "client_secret": secret.group(1),
                        "payment_method_data": {"type": "card", "card": CARD},
                    },
                    timeout=60,
                ),
                200,
                lambda answer: answer.json().get("status") == "succeeded",
            )
            thanks_url = pay_url.replace("/support/pay/", "/support/thanks/")
            self._step(
                "thanks", lambda: browser.get(thanks_url, allow_redirects=False, timeout=60), 200
            )
        except Failed:
            return None
        finally:
            browser.close()
        return 200

    def close(self) -> None:
        self.stripe.close()


def process_cpu(top: Topology) -> dict[str, float]:
    """CPU seconds so far of each process (with its children), of PostgreSQL's and Redis's
    server processes (whoever else uses them), and of this one (the load, the SMTP server)."""
    seconds = {name: harness.tree_cpu_seconds(proc.pid) or 0.0 for name, proc in top.procs.items()}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            raw = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        if name in ("postgres", "redis-server"):
            values = raw[raw.rfind(")") + 2 :].split()
            # By process: one that ended meanwhile is left out, not subtracted.
            seconds[f"{name}#{entry.name}"] = (int(values[11]) + int(values[12])) / tick
    seconds["load generator"] = time.process_time()
    return seconds


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    used: dict[str, float] = {}
    for key, seconds in after.items():
        name = key.partition("#")[0]
        used[name] = used.get(name, 0.0) + seconds - before.get(key, 0.0)
    return used


@dataclass
class Load:
    """What was sent: the two paced streams, each checkout step, each reader's gift."""

    views: harness.Tally
    checkouts: harness.Tally
    steps: dict[str, harness.Tally]
    gifts: list[Gift]
    problems: list[str]
    cpu: dict[str, float]  # seconds used during the load, by process
    seconds: float
    load_average: str
    drain_seconds: float = 0.0


def drive(top: Topology, args: argparse.Namespace) -> Load:
    """Both streams at once for ``--minutes``, then wait (bounded) for the queue to drain."""
    seconds = args.minutes * 60
    host, port = top.base.removeprefix("http://").split(":")
    numbers, run_id = itertools.count(), secrets.token_hex(3)
    readers: list[Reader] = []
    viewers: list[loadgen.KeepAliveGet] = []

    def reader() -> Reader:
        readers.append(Reader(top.base, top.simulator, numbers, run_id))
        return readers[-1]

    def viewer() -> loadgen.KeepAliveGet:
        viewers.append(loadgen.KeepAliveGet(host, int(port), "/support"))
        return viewers[-1]

    streams: dict[str, harness.Tally] = {}

    def views() -> None:
        streams["views"] = harness.paced(
            viewer, args.views_per_second, seconds, clients=32, late=LATE
        )

    def checkouts() -> None:
        streams["checkouts"] = harness.paced(
            reader, args.checkouts_per_second, seconds, clients=48, late=LATE
        )

    cpu_before, started = process_cpu(top), time.monotonic()
    threads = [threading.Thread(target=views), threading.Thread(target=checkouts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_after, wall = process_cpu(top), time.monotonic() - started
    for sender in viewers:
        sender.close()
    for client in readers:
        client.close()
    steps = {step: harness.Tally() for step in STEPS}
    for r in readers:
        for step, tally in r.tallies.items():
            steps[step].merge(tally)
    for tally in steps.values():
        tally.seconds = streams["checkouts"].seconds
    load = Load(
        streams["views"],
        streams["checkouts"],
        steps,
        [gift for r in readers for gift in r.gifts],
        [problem for r in readers for problem in r.problems],
        cpu_used(cpu_before, cpu_after),
        wall,
        harness.machine_load(),
    )
    deadline = time.monotonic() + args.drain_seconds
    while time.monotonic() < deadline and not drained(top, load.gifts):
        time.sleep(1)
    load.drain_seconds = time.monotonic() - started - wall
    time.sleep(5)  # a few more beats: nothing is sent twice
    return load


def drained(top: Topology, gifts: list[Gift]) -> bool:
    """Every paid gift's event stored and, with everything else, processed; every receipt sent."""
    paid = sum(1 for gift in gifts if gift.intent)
    with psycopg.connect(top.database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM stripe_events WHERE type = 'payment_intent.succeeded'),"
            "       (SELECT count(*) FROM stripe_events"
            "         WHERE processed_at IS NULL AND parked_at IS NULL),"
            "       (SELECT count(*) FROM email_messages WHERE status IN ('queued', 'sending'))"
        ).fetchone()
    return row is not None and row[0] >= paid and row[1] == 0 and row[2] == 0


@dataclass
class Observed:
    """What the topology holds afterwards: the simulator, the database, the SMTP server,
    /metrics and the logs."""

    intents: dict[str, tuple[str, int]]  # at the simulator: id -> (status, amount)
    ledger: list[tuple[str | None, str, int, str | None]]  # intent, status, amount, email
    receipts: list[tuple[str, str]]  # the outbox's receipts: address, status
    other_mail: list[tuple[str, str, int]]  # template, status, count
    events: list[tuple[str, int, int, int, int, int]]  # type, stored, deliveries, processed,
    # failed at least once, parked
    recipients: Counter[str]  # at the SMTP server
    outcomes: Counter[str]  # /metrics: webhook events by outcome
    answers: Counter[str]  # /metrics: HTTP answers by status class
    log_errors: dict[str, list[str]]  # by process
    # /metrics: by route, the upper bound of the latency bucket that holds the 99th percentile
    app_p99: dict[str, float] = field(default_factory=dict)


def observe(top: Topology) -> Observed:
    with psycopg.connect(top.database_url) as conn:
        ledger = conn.execute(
            "SELECT stripe_payment_intent_id, status, amount + fee_cover_amount, donor_email"
            " FROM donations"
        ).fetchall()
        receipts = conn.execute(
            "SELECT to_address, status FROM email_messages WHERE template = 'receipt'"
        ).fetchall()
        other_mail = conn.execute(
            "SELECT template, status, count(*) FROM email_messages WHERE template <> 'receipt'"
            " GROUP BY template, status"
        ).fetchall()
        events = conn.execute(
            "SELECT type, count(*), sum(deliveries), count(processed_at),"
            "       count(*) FILTER (WHERE attempts > 1 OR last_error IS NOT NULL),"
            "       count(parked_at)"
            " FROM stripe_events GROUP BY type ORDER BY type"
        ).fetchall()
    outcomes, answers = Counter[str](), Counter[str]()
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in requests.get(f"{top.base}/metrics", timeout=30).text.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            if match.group(1) == "donations_webhook_events_total":
                outcomes[labels["outcome"]] += int(float(match.group(3)))
            if match.group(1) == "donations_http_requests_total":
                answers[labels["status"][:1] + "xx"] += int(float(match.group(3)))
            if match.group(1) == "donations_http_request_duration_seconds_bucket":
                bounds = buckets.setdefault(labels["route"], [])
                bounds.append((float(labels["le"]), float(match.group(3))))
    app_p99 = {
        route: next(le for le, n in sorted(bounds) if n >= 0.99 * max(bounds)[1])
        for route, bounds in buckets.items()
        if max(bounds)[1] >= 10
    }
    return Observed(
        simulator_intents(top),
        ledger,
        receipts,
        other_mail,
        events,
        Counter(top.sink.recipients),
        outcomes,
        answers,
        log_errors(top.logs),
        app_p99,
    )


def simulator_intents(top: Topology) -> dict[str, tuple[str, int]]:
    """Every PaymentIntent at the simulator, a page of 100 at a time."""
    intents: dict[str, tuple[str, int]] = {}
    after: dict[str, str] = {}
    with requests.Session() as session:
        session.auth = ("sk_test_local", "")
        while True:
            page = session.get(
                f"{top.simulator}/v1/payment_intents", params={"limit": "100", **after}, timeout=60
            )
            page.raise_for_status()
            data = page.json()
            for intent in data["data"]:
                intents[intent["id"]] = (intent["status"], intent["amount"])
            if not data.get("has_more") or not data["data"]:
                return intents
            after = {"starting_after": data["data"][-1]["id"]}


def log_errors(logs: Path) -> dict[str, list[str]]:
    """Lines that report an error (or a 5xx in gunicorn's access log), per process."""
    pattern = re.compile(rb'"level": "(ERROR|CRITICAL)"|Traceback|\] ERROR|" 5\d\d \d')
    found: dict[str, list[str]] = {}
    for log in sorted(logs.glob("*.log")):
        with log.open("rb") as lines:
            found[log.stem] = [
                line[:300].decode(errors="replace").strip()
                for line in lines
                if pattern.search(line)
            ]
    return found


def verify(load: Load, seen: Observed) -> tuple[list[str], list[str]]:
    """(what was found, what went wrong): lost, doubled, failed or wrong, anywhere."""
    found, problems = [], list[str]()
    for name, tally in (("views", load.views), ("checkouts", load.checkouts), *load.steps.items()):
        if tally.errors:
            codes = {code: n for code, n in tally.statuses.items() if not 200 <= code < 400}
            problems.append(f"{name}: {tally.errors} failed ({codes or 'no answer'})")

    # Payments: every succeeded PaymentIntent at the simulator once in the ledger, same amount.
    chosen = {gift.intent: gift for gift in load.gifts if gift.intent}
    rows = Counter(row[0] for row in seen.ledger)
    by_intent = {row[0]: row for row in seen.ledger}
    succeeded = {i: amount for i, (status, amount) in seen.intents.items() if status == "succeeded"}
    missing = [i for i in succeeded if rows[i] == 0]
    doubled = [i for i, n in rows.items() if i and n > 1]
    wrong = [
        i
        for i, amount in succeeded.items()
        if i in by_intent
        and (
            by_intent[i][1] != "succeeded"
            or by_intent[i][2] != amount
            or (i in chosen and chosen[i].amount != amount)
        )
    ]
    ledger_only = [r[0] for r in seen.ledger if r[1] == "succeeded" and r[0] not in succeeded]
    found.append(
        f"payments: {len(chosen)} confirmed by readers, {len(succeeded)} succeeded at the "
        f"simulator (of {len(seen.intents)} PaymentIntents), {len(seen.ledger)} donations in the "
        f"ledger ({sum(1 for r in seen.ledger if r[1] == 'succeeded')} succeeded); "
        f"missing {len(missing)}, doubled {len(doubled)}, wrong status or amount {len(wrong)}"
    )
    for label, ids in (
        ("missing from the ledger", missing),
        ("in the ledger twice", doubled),
        ("with the wrong status or amount in the ledger", wrong),
        ("confirmed but not succeeded at the simulator", [i for i in chosen if i not in succeeded]),
        ("succeeded in the ledger but not at the simulator", ledger_only),
    ):
        if ids:
            problems.append(f"{len(ids)} payments {label}, e.g. {ids[:3]}")

    # Receipts: one per donor at the SMTP server, the outbox all sent.
    donors = {row[3] or "" for row in seen.ledger if row[1] == "succeeded"}
    queued = Counter(address for address, _ in seen.receipts)
    unsent = [receipt for receipt in seen.receipts if receipt[1] != "sent"]
    found.append(
        f"receipts: {len(donors)} donors, {len(seen.recipients)} addresses received "
        f"{seen.recipients.total()} messages at the SMTP server; {len(seen.receipts)} receipts "
        f"in the outbox, {len(unsent)} not sent"
        + "".join(f"; other mail: {t} {s} {n}" for t, s, n in seen.other_mail)
    )
    for label, addresses in (
        ("donors without a receipt", [d for d in donors if seen.recipients[d] == 0]),
        ("addresses mailed more than once", [a for a, n in seen.recipients.items() if n > 1]),
        ("addresses mailed that gave nothing", [a for a in seen.recipients if a not in donors]),
        ("receipts queued twice", [a for a, n in queued.items() if n > 1]),
        ("receipts not sent", unsent),
    ):
        if addresses:
            problems.append(f"{len(addresses)} {label}, e.g. {addresses[:3]}")

    # Webhooks: stored once per event (deliveries counted), each processed, none failed.
    found.append(
        f"{'webhook events':<26}{'stored':>8}{'deliveries':>11}{'processed':>10}"
        f"{'failed':>7}{'parked':>7}"
    )
    for type_, stored, deliveries, processed, failed, parked in seen.events:
        found.append(f"{type_:<26}{stored:>8}{deliveries:>11}{processed:>10}{failed:>7}{parked:>7}")
        if processed != stored or failed or parked:
            problems.append(
                f"{type_}: {stored - processed} of {stored} events not processed, "
                f"{failed} failed at least once, {parked} parked"
            )
    found.append(
        "/metrics: webhook events "
        + ", ".join(f"{k} {v}" for k, v in sorted(seen.outcomes.items()))
        + "; HTTP answers "
        + ", ".join(f"{k} {v}" for k, v in sorted(seen.answers.items()))
        + "; p99 in the app (the bucket holding it) "
        + ", ".join(f"{route} <= {le * 1000:g} ms" for route, le in sorted(seen.app_p99.items()))
    )
    if seen.outcomes["failed"] or seen.outcomes["parked"]:
        problems.append(
            f"/metrics: events failed {seen.outcomes['failed']}, parked {seen.outcomes['parked']}"
        )
    if seen.answers["5xx"]:
        problems.append(f"/metrics: {seen.answers['5xx']} answers 5xx")
    for name, lines in seen.log_errors.items():
        if lines:
            problems.append(f"{len(lines)} errors in {name}'s log, the first: {lines[0]}")
    problems += [f"e.g. {problem}" for problem in load.problems[:5]]
    return found, problems


def shortfalls(load: Load, args: argparse.Namespace) -> list[str]:
    return [
        f"{name} {tally.rate:.1f}/s of {target:g}/s"
        for name, tally, target in (
            ("views", load.views, args.views_per_second),
            ("checkouts", load.checkouts, args.checkouts_per_second),
        )
        if tally.rate < SHORT_OF_TARGET * target
    ]


def report(load: Load, args: argparse.Namespace) -> list[str]:
    lines = [
        f"load: ran {load.seconds:.0f} s; the queue drained {load.drain_seconds:.0f} s later",
        f"{'requests':<22}{'planned':>8}{'sent':>8}{'ok':>8}{'errors':>8}{'per s':>9}{'target':>8}"
        + "".join(f"{f'p{p} ms':>9}" for p in (50, 95, 99))
        + f"{'max ms':>9}",
    ]
    seconds = args.minutes * 60
    for name, tally, target in (
        ("views GET /support", load.views, args.views_per_second),
        ("checkouts (whole)", load.checkouts, args.checkouts_per_second),
        *((f"  {step}", tally, 0.0) for step, tally in load.steps.items()),
    ):
        planned = f"{int(target * seconds)}" if target else ""
        lines.append(
            f"{name:<22}{planned:>8}{tally.ok + tally.errors:>8}{tally.ok:>8}{tally.errors:>8}"
            f"{tally.rate:>9.1f}{f'{target:g}' if target else '':>8}"
            + "".join(f"{tally.percentile_ms(p):>9.1f}" for p in (50, 95, 99, 100))
        )
    lines.append(
        "(views and whole checkouts: latency from each one's due time; steps: from their start;"
        f" what was more than {LATE:g} s behind the schedule at its end was not sent)"
    )
    cpu = sorted(load.cpu.items(), key=lambda item: -item[1])
    lines.append(
        "CPU during the load, % of one core: "
        + ", ".join(f"{name} {100 * used / load.seconds:.0f}" for name, used in cpu)
    )
    lines.append(f"load average at the end of the load: {load.load_average}")
    return lines


def run(top: Topology, args: argparse.Namespace) -> int:
    """The load test with its report; the exit status (see the module's docstring)."""
    print(
        f"load: {args.checkouts_per_second:g} checkouts/s and {args.views_per_second:g} views/s "
        f"for {args.minutes * 60:g} s; load average {harness.machine_load()}; "
        "raised for this run only: " + ", ".join(f"{k}={v}" for k, v in SETTINGS.items()),
        flush=True,
    )
    load = drive(top, args)
    found, problems = verify(load, observe(top))
    print("\n".join(["", *report(load, args), *found, ""]))
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"load: FAILED (logs in {top.logs})")
        return 1
    print(
        f"load: nothing lost, nothing doubled, no error: {len(load.gifts)} checkouts, "
        "each paid once in the ledger with one receipt"
    )
    if short := shortfalls(load, args):
        print("load: SHORT OF THE TARGET RATE (the machine saturated): " + "; ".join(short))
        return 2
    print("load: the target rates held")
    return 0
