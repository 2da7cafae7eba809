"""What every benchmark shares: an app environment, a throwaway database,
gunicorn servers on loopback, generic load loops, and the results file.

A benchmark is a module with a docstring, ``add_arguments(parser)`` and
``run(args) -> Outcome``, listed in ``bench/__main__.py``. Everything it
needs to start servers, drive load and report lives here, so a new one is
about a page of code (see bench/README.md, "Adding a benchmark").
Loopback only: nothing here talks to another host.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

# Variables that would change how the app starts; a benchmark sets its own.
APP_VARIABLES = (
    "SECRET_KEY",
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "BASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "MAIL_FROM",
    "MAIL_DIR",
    "INSTANCE_PATH",
    "TRUSTED_PROXIES",
    "REPORTING_TIME_ZONE",
    "CHECKOUT_RATE_LIMIT",
    "FLASK_DEBUG",
    "FLASK_APP",
    "WEB_CONCURRENCY",
)


@dataclass
class Outcome:
    """What a benchmark hands back to the runner: exit status and its headline ratios.

    ``status`` is 0 when every target is met, 1 when one is not, 2 for an
    invalid run (failed requests, rows that disagree). ``ratios`` maps a
    label to (value, target text), printed by ``python -m bench all``.
    """

    status: int
    ratios: dict[str, tuple[float, str]] = field(default_factory=dict)


# -- environment and processes ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def app_environment(
    workdir: Path, database_url: str, port: int = 5000, **extra: str
) -> dict[str, str]:
    """The app's variables for a benchmark run: fake test-mode keys, nothing outside loopback."""
    env = {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106 -- a fake test-mode key
        STRIPE_PUBLISHABLE_KEY="pk_test_bench",
        STRIPE_WEBHOOK_SECRET="whsec_bench",  # noqa: S106 -- a fake secret
        # Nothing listens there: the measured paths never call Stripe.
        STRIPE_API_BASE="http://127.0.0.1:9",
        BASE_URL=f"http://{HOST}:{port}",
        INSTANCE_PATH=str(workdir / "instance"),
        MAIL_DIR=str(workdir / "mail"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def flask(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    """Run ``flask --app wsgi ARGS`` (e.g. ``db upgrade``) or stop the benchmark."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"bench: `flask {' '.join(args)}` failed ({done.returncode})")


@contextlib.contextmanager
def postgres_database(keep: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database (``postgresql://`` URL), dropped afterwards."""
    import psycopg

    name = f"donations_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        if keep:
            print(f"bench: kept database {name}")
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """``sqlite`` (a file in ``workdir``) or ``postgresql`` (a throwaway database)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    with postgres_database() as url:
        yield url


def gunicorn_command(app_spec: str, port: int, threads: int = 4, workers: int = 1) -> list[str]:
    """The one set of server settings every app in a comparison runs under."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "5",
        "--no-control-socket",
        "--log-level",
        "warning",
        app_spec,
    ]


def server_settings(threads: int = 4) -> str:
    return " ".join(gunicorn_command("APP", 0, threads)[5:-1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the process and its children (Linux /proc)."""
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_process(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    workdir: Path,
    cpus: set[int] | None = None,
) -> Server:
    """Start ``command`` with its output in ``workdir/NAME.log``, optionally pinned to ``cpus``."""
    log = workdir / f"{name}.log"

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=pin if cpus else None,  # before any client thread starts
        )
    return Server(name, port, proc, log)


def wait_until(server: Server, ready: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``ready()`` until it returns True; connection errors mean "not yet"."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(
                f"bench: {server.name} exited ({server.proc.returncode}):\n{server.log_tail()}"
            )
        try:
            if ready():
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise SystemExit(f"bench: {server.name} did not come up ({last}):\n{server.log_tail()}")


@contextlib.contextmanager
def running() -> Iterator[dict[str, Server]]:
    """A dict to put servers in; every one is stopped on the way out."""
    servers: dict[str, Server] = {}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _stat_fields(pid: str | int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def tree_cpu_seconds(root_pid: int) -> float | None:
    if not Path("/proc").is_dir():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    pids = [str(root_pid)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and fields[1] == str(root_pid):
                pids.append(entry.name)
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / tick


def choose_cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): one core each when there are two or more."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[1]}, {cpus[0]}


def machine_load() -> str:
    """The 1/5/15-minute load averages, printed beside every result."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# -- generic load loops (for requests the fast GET client in loadgen.py cannot send) ------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``values`` in any unit; NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds
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
        return percentile(self.latencies, p) * 1000

    def record(self, status: int | None, since: float) -> None:
        if status is None:
            self.errors += 1
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            self.ok += 1
            self.latencies.append(time.monotonic() - since)
        else:
            self.errors += 1

    def summary(self) -> dict[str, float]:
        return {
            "per_s": round(self.rate, 1),
            "ok": self.ok,
            "errors": self.errors,
            "p50_ms": round(self.percentile_ms(50), 1),
            "p99_ms": round(self.percentile_ms(99), 1),
            "max_ms": round(self.percentile_ms(100), 1),
        }


# A "send" makes one request and returns its HTTP status, or None when it failed.
Send = Callable[[], int | None]


def closed_loop(make_send: Callable[[], Send], connections: int, seconds: float) -> Tally:
    """``connections`` clients, each sending one request at a time, for ``seconds``."""
    tallies = [Tally() for _ in range(connections)]
    sends = [make_send() for _ in range(connections)]
    start = threading.Barrier(connections + 1)
    deadline = 0.0

    def work(tally: Tally, send: Send) -> None:
        start.wait()
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            tally.record(send(), t0)

    threads = [
        threading.Thread(target=work, args=(t, s), daemon=True)
        for t, s in zip(tallies, sends, strict=True)
    ]
    for thread in threads:
        thread.start()
    t0 = time.monotonic()
    deadline = t0 + seconds
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    return _total(tallies, time.monotonic() - t0)


def paced(
    make_send: Callable[[], Send],
    rate: float,
    seconds: float,
    clients: int = 16,
    late: float | None = None,
) -> Tally:
    """``rate`` requests a second on a fixed schedule; latency counted from each due time,
    so a slow server is not flattered by being sent less (open loop). With ``late``,
    sending stops ``late`` seconds after the schedule's end, however far behind it is
    (what was not sent is not counted); without, every request is sent."""
    slots = int(rate * seconds)
    tallies = [Tally() for _ in range(clients)]
    sends = [make_send() for _ in range(clients)]
    t0 = time.monotonic() + 0.2
    stop = math.inf if late is None else t0 + seconds + late

    def work(index: int, tally: Tally, send: Send) -> None:
        for slot in range(index, slots, clients):
            due = t0 + slot / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif time.monotonic() > stop:
                return
            tally.record(send(), due)

    threads = [
        threading.Thread(target=work, args=(i, t, s), daemon=True)
        for i, (t, s) in enumerate(zip(tallies, sends, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + (late or 0) + 120)
    return _total(tallies, max(time.monotonic() - t0, 1e-9))


def _total(tallies: list[Tally], seconds: float) -> Tally:
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    total.seconds = seconds
    return total


# -- reporting ---------------------------------------------------------------------------


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "app_changes_uncommitted": bool(
            git("status", "--porcelain", "--", "donations", "templates", "wsgi.py")
        ),
    }


def write_results(name: str, report: dict[str, Any]) -> Path:
    """``bench/results/NAME-<UTC time>.json`` (gitignored), with revision and load added."""
    report = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "load_average": machine_load(),
        **report,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{name}-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"bench: wrote bench/results/{out.name} (load average {report['load_average']})")
    return out
