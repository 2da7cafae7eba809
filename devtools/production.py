"""The production topology on this machine, checked end to end: ``python -m devtools.production``.

Brings up what the README's production guide describes, from the
``Procfile``: gunicorn (``web``), a Celery ``worker`` and ``beat``, on
PostgreSQL and Redis, with mail to an SMTP server and Stripe played by the
simulator (its webhooks signed and sent to ``web``). Then, as an operator
and a reader would:

1. migrates a new database and seeds the ask (the deploy steps);
2. waits for ``/readyz`` and ``flask ops ready worker|beat``;
3. gives 10.00 USD through the checkout and the simulator, and waits until
   the webhook was processed by the worker, the ledger says succeeded and
   the receipt reached the SMTP server, once;
4. reloads gunicorn (``SIGHUP``, the zero-downtime restart) while requests
   keep coming, and counts the answers that were not 200 (must be none);
5. reads ``/metrics`` and checks it counted the webhook and the requests.

Everything runs on loopback and is torn down at the end (the database is
dropped); exit 0 when every step held, 1 otherwise. Needs the development
install (``make test`` installs it). ``--keep`` leaves it running for a look.

``--load`` puts the same topology under load instead of steps 3 to 5:
17 checkouts and 1,000 views of the ask a second for 10 minutes by default,
then checks nothing was lost or doubled (devtools/load.py).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PRODUCTION_CHECK_REDIS_URL", "redis://127.0.0.1:6379/14")
WEBHOOK_SECRET = "whsec_" + "production_check_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError, psycopg.Error):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


class Sink:
    """An SMTP server that keeps what it is given, and to whom."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.recipients: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(getattr(envelope, "original_content", b"") or b"")
        self.recipients += getattr(envelope, "rcpt_tos", [])
        return "250 OK"


@contextmanager
def database() -> Iterator[str]:
    name = f"donations_production_check_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def process(
    name: str, command: list[str], env: dict[str, str], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log = (logs / f"{name}.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def give(base: str, simulator: str) -> str:
    """A one-off 10.00 USD gift through the checkout, paid as Stripe.js would; its pay URL."""
    session = requests.Session()
    page = session.get(f"{base}/support/checkout?frequency=once&amount=10&currency=USD", timeout=30)
    page.raise_for_status()

    def hidden(name: str) -> str:
        match = re.search(rf'name="{name}" type="hidden" value="([^"]+)"', page.text)
        assert match, f"no {name} in the details page"
        return match.group(1)

    started = session.post(
        f"{base}/support/checkout",
        data={
            "csrf_token": hidden("csrf_token"),
            "attempt": hidden("attempt"),
            "amount": hidden("amount"),
            "frequency": "once",
            "currency": "USD",
            "email": "production-check@example.org",
            "name": "Production Check",
            "country": "GB",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert started.status_code == 303, (started.status_code, started.text[:300])
    pay_url = started.headers["Location"]
    pay = session.get(pay_url if pay_url.startswith("http") else base + pay_url, timeout=30)
    secret = re.search(r'data-client-secret="([^"]+)"', pay.text)
    assert secret, "no client secret on the pay page"
    intent = secret.group(1).split("_secret_")[0]
    confirmed = requests.post(
        f"{simulator}/v1/payment_intents/{intent}/confirm",
        json={
            "key": "pk_test_local",
            "client_secret": secret.group(1),
            "payment_method_data": {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": "12",
                    "exp_year": "34",
                    "cvc": "123",
                },
            },
        },
        timeout=30,
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text
    return intent


def hammer(url: str, stop: threading.Event, results: list[tuple[int, float]]) -> None:
    """Requests one after another, each on its own connection, as a reverse proxy
    sends them upstream by default (nginx: HTTP/1.0, no keep-alive); each
    answer's status (0: none) and how long it took."""
    with requests.Session() as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = session.get(url, timeout=60, headers={"Connection": "close"})
                status = answer.status_code
            except requests.RequestException as exc:
                print(f"reload: {exc!r}", file=sys.stderr)
                status = 0
            results.append((status, time.monotonic() - started))


@dataclass
class Topology:
    """The running topology: where to reach it, its processes (the Procfile's and the
    simulator), and the mail it has sent."""

    base: str
    simulator: str
    database_url: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]]
    sink: Sink
    logs: Path


@contextmanager
def topology(
    step: Callable[[str], None], settings: dict[str, str] | None = None, load: bool = False
) -> Iterator[Topology]:
    """Bring the Procfile's processes up on a new database (steps 1 and 2); tear down after.

    ``settings`` are added to the app's environment; ``load`` keeps the
    simulator's state in memory only (localstripe rewrites its whole state
    file on every change, which a load test cannot afford).
    """
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="donations-prod-")))
        logs = work / "logs"
        logs.mkdir()
        metrics_dir = work / "metrics"
        metrics_dir.mkdir()
        database_url = stack.enter_context(database())
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        sink = Sink()
        smtp_port = free_port()
        controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)  # type: ignore[arg-type]
        controller.start()
        stack.callback(controller.stop)
        web_port, simulator_port = free_port(), free_port()
        base, simulator = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{simulator_port}"
        env = {
            **os.environ,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "STRIPE_SECRET_KEY": "sk_test_local",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_local",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": simulator,
            "BASE_URL": base,
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "MAIL_FROM": "Newsroom <support@newsroom.test>",
            "DISPATCH_INTERVAL_SECONDS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PORT": str(web_port),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": os.environ.get("WEB_THREADS", "4"),
            "BEAT_SCHEDULE_FILE": str(work / "beat-schedule"),
            "INSTANCE_PATH": str(work / "instance"),
            **(settings or {}),
        }
        env.pop("FLASK_APP", None)
        state = [] if load else ["--state", str(work / "simulator.pickle")]
        simulator_proc = stack.enter_context(
            process(
                "simulator",
                [
                    sys.executable,
                    "-m",
                    "devtools.simulator",
                    "--port",
                    str(simulator_port),
                    *state,
                    "--from-scratch",
                    "--webhook-url",
                    f"{base}/webhooks/stripe",
                    "--webhook-secret",
                    WEBHOOK_SECRET,
                ],
                env,
                logs,
            )
        )
        wait_until("the simulator", lambda: requests.get(simulator, timeout=2).status_code < 500)
        for command in (["db", "upgrade"], ["demo", "seed"]):
            done = flask(env, *command)
            if done.returncode:
                raise RuntimeError(f"flask {' '.join(command)}: {done.stdout}{done.stderr}")
        step("migrated a new PostgreSQL database and seeded the ask")

        bin_dir = Path(sys.executable).parent
        path_env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
        procs = {}
        for name, line in procfile().items():
            procs[name] = stack.enter_context(
                process(name, ["bash", "-c", f"exec {line}"], path_env, logs)
            )
        wait_until("/readyz", lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200)
        wait_until("a worker", lambda: flask(env, "ops", "ready", "worker").returncode == 0)
        wait_until("beat's heartbeat", lambda: flask(env, "ops", "ready", "beat").returncode == 0)
        step(f"web, worker and beat ready from the Procfile ({', '.join(procs)})")
        procs["simulator"] = simulator_proc
        yield Topology(base, simulator, database_url, env, procs, sink, logs)


def check(top: Topology, step: Callable[[str], None]) -> bool:
    """Steps 3 to 5: one gift, a reload under load, the metrics."""
    base, simulator, database_url, sink = top.base, top.simulator, top.database_url, top.sink
    intent = give(base, simulator)

    def recorded() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT status FROM donations WHERE stripe_payment_intent_id = %s", (intent,)
            ).fetchone()
        return row is not None and row[0] == "succeeded"

    wait_until("the ledger to record the gift", recorded)
    wait_until("the receipt", lambda: len(sink.messages) >= 1)
    time.sleep(5)  # a few more beats: nothing is sent twice
    receipts = [m for m in sink.messages if b"production-check@example.org" in m]
    if len(receipts) != 1:
        print(f"expected one receipt, got {len(receipts)}", file=sys.stderr)
        return False
    step("a 10.00 USD gift: webhook processed by the worker, ledger succeeded, one receipt")

    stop, answers = threading.Event(), list[tuple[int, float]]()
    threads = [
        threading.Thread(target=hammer, args=(f"{base}/support", stop, answers)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    top.procs["web"].send_signal(signal.SIGHUP)  # gunicorn: new workers, then the old ones leave
    time.sleep(8)
    stop.set()
    for thread in threads:
        thread.join()
    failed = [code for code, _ in answers if code != 200]
    slowest = max((took for _, took in answers), default=0.0)
    if failed or not answers:
        codes = sorted(set(failed))
        print(f"reload: {len(failed)} of {len(answers)} not 200: {codes}", file=sys.stderr)
        return False
    step(
        f"gunicorn reloaded (SIGHUP) under load: {len(answers)} answers, none failed; "
        f"the slowest took {slowest:.1f} s (new workers loading the app)"
    )

    metrics = requests.get(f"{base}/metrics", timeout=10).text
    processed = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("donations_webhook_events_total{")
        and 'outcome="processed"' in line
        and 'type="payment_intent.succeeded"' in line
    ]
    if not processed or processed[0] < 1:
        print("metrics: no processed payment_intent.succeeded event", file=sys.stderr)
        return False
    step("/metrics counted the webhook (all processes added up)")
    return True


def main(argv: list[str] | None = None) -> int:
    from devtools import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave it running until Ctrl-C")
    load.add_arguments(parser)
    args = parser.parse_args(argv)
    steps: list[str] = []

    def step(text: str) -> None:
        steps.append(text)
        print(f"ok  {text}", flush=True)

    with topology(step, load.SETTINGS if args.load else None, load=args.load) as top:
        status = load.run(top, args) if args.load else 0 if check(top, step) else 1
        if args.keep:
            print(f"running at {top.base} (logs in {top.logs}); Ctrl-C to stop", flush=True)
            with suppress(KeyboardInterrupt):
                signal.pause()
    if not args.load and status == 0:
        print(f"production topology: {len(steps)} steps passed")
    return status


if __name__ == "__main__":
    sys.exit(main())
