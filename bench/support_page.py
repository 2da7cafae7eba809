"""GET /support under gunicorn, as a ratio against a bare Flask endpoint.

Servers with identical gunicorn settings run on free loopback ports:

* bare: ``bench.bare_app:app``, whose /support returns a static HTML string
  of the same size as our page (the baseline);
* stack: our real app plus one route returning that same static string
  (bench/floor_app.py), i.e. our hooks and extensions with no view work --
  a diagnostic, skipped with ``--no-stack``;
* ours: the real app (``wsgi:app``) serving GET /support from a fresh,
  migrated and seeded SQLite database in a temporary directory.

They are loaded one at a time, never together, alternating the order in
each round so that drift on a shared machine hits all of them alike. The
headline figure is ours/bare requests per second, against ``--target``
(0.6 by default). ``--profile`` instead times the three in-process and
runs GET /support under cProfile to show where the time goes.

See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import json
import math
import os
import platform
import pstats
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.floor_app import FLOOR_PATH, add_floor_route
from bench.loadgen import LoadResult, run_load

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
PATH = "/support"
# A returning reader from the UK: exercises locale negotiation and the
# territory -> currency lookup the ask does for every visitor.
HEADERS = {
    "User-Agent": "donations-bench/1",
    "Accept": "text/html",
    "Accept-Language": "en-GB,en;q=0.9,ru;q=0.8",
    "Accept-Encoding": "identity",
}
# Variables that would change how the app starts; the benchmark sets its own.
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


@dataclass(frozen=True)
class Plan:
    warmup: float
    seconds: float  # measured seconds per server, split across rounds
    rounds: int
    connections: int
    threads: int
    target: float
    pin: bool
    floor: bool

    @property
    def leg(self) -> float:
        return self.seconds / self.rounds


# --------------------------------------------------------------------------
# Environment and servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def app_environment(workdir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106 -- a fake test-mode key
        STRIPE_PUBLISHABLE_KEY="pk_test_bench",
        STRIPE_WEBHOOK_SECRET="whsec_bench",  # noqa: S106 -- a fake secret
        # Nothing listens there: GET /support never calls Stripe.
        STRIPE_API_BASE="http://127.0.0.1:9",
        BASE_URL=f"http://{HOST}:{port}",
        INSTANCE_PATH=str(workdir / "instance"),
        MAIL_DIR=str(workdir / "mail"),
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    for args in (["db", "upgrade"], ["demo", "seed"]):
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"bench: `flask {' '.join(args)}` failed ({done.returncode})")


def gunicorn_command(app_spec: str, port: int, threads: int) -> list[str]:
    """The one set of server settings both apps run under."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        "1",
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


@dataclass
class Server:
    name: str
    path: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the gunicorn master and its workers (Linux /proc)."""
        return _tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _stat_fields(pid: str | int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _tree_cpu_seconds(root_pid: int) -> float | None:
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


def start_server(
    name: str,
    target: Target,
    env: dict[str, str],
    port: int,
    plan: Plan,
    workdir: Path,
    cpus: set[int] | None,
) -> Server:
    log = workdir / f"{name}.log"

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    with log.open("wb") as out:
        proc = subprocess.Popen(
            gunicorn_command(target.app_spec, port, plan.threads),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=pin if cpus else None,  # before any client thread starts
        )
    return Server(name, target.path, port, proc, log)


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=HEADERS)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(
                f"bench: the {server.name} server exited ({server.proc.returncode}):\n"
                + server.log_tail()
            )
        try:
            status, body = fetch(server.port, server.path)
        except OSError as exc:
            last = str(exc)
            time.sleep(0.1)
            continue
        if status != 200:
            raise SystemExit(
                f"bench: {server.name} answered GET {server.path} with {status}:\n"
                + server.log_tail()
            )
        return body
    raise SystemExit(f"bench: the {server.name} server did not come up ({last})")


@contextlib.contextmanager
def running(servers: dict[str, Server]) -> Iterator[dict[str, Server]]:
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


# --------------------------------------------------------------------------
# Measuring


@dataclass
class Leg:
    result: LoadResult
    server_cpu: float | None


def measure(server: Server, path: str, seconds: float, plan: Plan, record: bool = True) -> Leg:
    cpu0 = server.cpu_seconds()
    result = run_load(
        HOST,
        server.port,
        path,
        connections=plan.connections,
        duration=seconds,
        max_requests=int(seconds * 20_000),
        headers=HEADERS,
        record=record,
    )
    cpu1 = server.cpu_seconds()
    if server.proc.poll() is not None:
        raise SystemExit(f"bench: the {server.name} server died:\n" + server.log_tail())
    server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return Leg(result, server_cpu)


def summary(legs: list[Leg]) -> dict[str, Any]:
    total = LoadResult()
    for leg in legs:
        total.merge(leg.result)
    cpu = [leg.server_cpu for leg in legs]
    server_cpu = None if None in cpu else sum(c for c in cpu if c is not None)
    return {
        "requests": total.requests,
        "errors": total.errors,
        "error_kinds": dict(total.error_kinds),
        "seconds": round(total.seconds, 3),
        "rps": round(total.rps, 1),
        "round_rps": [round(leg.result.rps, 1) for leg in legs],
        "latency_ms": {
            "p50": round(total.percentile_ms(50), 3),
            "p90": round(total.percentile_ms(90), 3),
            "p99": round(total.percentile_ms(99), 3),
            "max": round(total.percentile_ms(100), 3),
        },
        "bytes_per_response": round(total.response_bytes / total.requests) if total.requests else 0,
        "server_cpu_us_per_request": (
            round(server_cpu / total.requests * 1e6, 1)
            if server_cpu is not None and total.requests
            else None
        ),
        "client_cpu_percent": (
            round(100 * total.client_cpu_seconds / total.seconds, 1) if total.seconds else None
        ),
    }


def choose_cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): one core each when there are two or more."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[1]}, {cpus[0]}


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


@dataclass(frozen=True)
class Target:
    name: str
    app_spec: str
    path: str
    what: str


BARE = Target("bare", "bench.bare_app:app", PATH, "bare Flask, static string")
STACK = Target("stack", "bench.floor_app:create()", FLOOR_PATH, "our app stack, static string")
OURS = Target("ours", "wsgi:app", PATH, "our app, GET /support")


def run_benchmark(plan: Plan) -> int:
    started = time.monotonic()
    server_cpus, client_cpus = choose_cpus(plan.pin)
    targets = [BARE, STACK, OURS] if plan.floor else [BARE, OURS]
    with tempfile.TemporaryDirectory(prefix="donations-bench-") as tmp:
        workdir = Path(tmp)
        ports = {t.name: free_port() for t in targets}
        env = app_environment(workdir, ports["ours"])
        print("bench: preparing a SQLite database (db upgrade, demo seed) ...", flush=True)
        prepare_database(env)
        servers: dict[str, Server] = {}
        with running(servers):
            ours = start_server("ours", OURS, env, ports["ours"], plan, workdir, server_cpus)
            servers["ours"] = ours
            page = wait_ready(ours)
            if b'id="ask-form"' not in page:
                raise SystemExit("bench: GET /support did not return the ask page")
            # The baselines send a static page of exactly our page's size.
            base_env = dict(env, BENCH_BARE_BYTES=str(len(page)))
            for t in targets:
                if t.name != "ours":
                    servers[t.name] = start_server(
                        t.name, t, base_env, ports[t.name], plan, workdir, server_cpus
                    )
            sizes = {t.name: len(wait_ready(servers[t.name])) for t in targets}
            if client_cpus:
                os.sched_setaffinity(0, client_cpus)

            print(
                f"bench: gunicorn 1 worker x {plan.threads} threads (gthread) per server; "
                f"{plan.connections} keep-alive connections; {plan.warmup:g} s warm-up, "
                f"then {plan.rounds} rounds of {plan.leg:g} s per server, one server at a time"
                + (" (servers and client pinned to separate cores)" if server_cpus else ""),
                flush=True,
            )
            for t in targets:
                measure(servers[t.name], t.path, plan.warmup, plan, record=False)
            legs: dict[str, list[Leg]] = {t.name: [] for t in targets}
            for i in range(plan.rounds):
                # Alternate the order so drift on a shared machine hits all alike.
                for t in targets if i % 2 == 0 else targets[::-1]:
                    leg = measure(servers[t.name], t.path, plan.leg, plan)
                    legs[t.name].append(leg)
                    print(f"  round {i + 1} {t.name:5}: {leg.result.rps:8.1f} req/s", flush=True)

    results = {t.name: dict(summary(legs[t.name]), what=t.what) for t in targets}

    def ratio(a: str, b: str) -> float:
        return results[a]["rps"] / results[b]["rps"] if results[b]["rps"] else 0.0

    def round_ratios(a: str, b: str) -> list[float]:
        return [
            round(x.result.rps / y.result.rps, 3) if y.result.rps else 0.0
            for x, y in zip(legs[a], legs[b], strict=True)
        ]

    headline = ratio("ours", "bare")
    report: dict[str, Any] = {
        "benchmark": "support_page",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pinned": bool(server_cpus),
        },
        "settings": {
            "server": " ".join(gunicorn_command("APP", 0, plan.threads)[3:]).replace(
                f"--bind {HOST}:0 ", ""
            ),
            "headers": HEADERS,
            "connections": plan.connections,
            "warmup_seconds": plan.warmup,
            "rounds": plan.rounds,
            "seconds_per_round": plan.leg,
            "response_bytes": sizes,
        },
        "results": results,
        "ratio": round(headline, 3),
        "round_ratios": round_ratios("ours", "bare"),
        "target": plan.target,
        "meets_target": headline >= plan.target,
        "elapsed_seconds": round(time.monotonic() - started, 1),
    }
    if plan.floor:
        report["stack_ratio"] = round(ratio("stack", "bare"), 3)
        report["stack_round_ratios"] = round_ratios("stack", "bare")
        report["page_ratio"] = round(ratio("ours", "stack"), 3)
    print_report(report)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"support_page-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nbench: wrote bench/results/{out.name} ({report['elapsed_seconds']:g} s)")

    errors = sum(r["errors"] for r in results.values())
    if errors:
        print(f"bench: INVALID RUN: {errors} failed requests", file=sys.stderr)
        return 2
    return 0 if report["meets_target"] else 1


def print_report(report: dict[str, Any]) -> None:
    results = report["results"]
    print()
    print(
        f"{'server':7}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'CPU/req':>10}{'errors':>8}  what"
    )
    for name, r in results.items():
        lat = r["latency_ms"]
        cpu = r["server_cpu_us_per_request"]
        cpu_text = f"{cpu:,.0f} us" if cpu is not None else "n/a"
        print(
            f"{name:7}{r['rps']:>10,.1f}{lat['p50']:>9.2f}{lat['p90']:>9.2f}{lat['p99']:>9.2f}"
            f"{lat['max']:>9.2f}{cpu_text:>10}{r['errors']:>8}  {r['what']}"
        )
    verdict = "meets" if report["meets_target"] else "BELOW"
    per_round = ", ".join(f"{x:.3f}" for x in report["round_ratios"])
    print(
        f"\nratio ours/bare: {report['ratio']:.3f} (rounds: {per_round}) "
        f"-- {verdict} the {report['target']:g}x target"
    )
    if "stack_ratio" in report:
        per_round = ", ".join(f"{x:.3f}" for x in report["stack_round_ratios"])
        print(
            f"  stack/bare: {report['stack_ratio']:.3f} (rounds: {per_round}) -- the best any "
            "page can do through our hooks and extensions"
        )
        print(f"  ours/stack: {report['page_ratio']:.3f} -- what the /support view itself costs")
    ours_cpu = results["ours"]["server_cpu_us_per_request"]
    bare_cpu = results["bare"]["server_cpu_us_per_request"]
    if ours_cpu and bare_cpu:
        print(f"server CPU per request, ours/bare: {ours_cpu / bare_cpu:.2f}x")
    client = ", ".join(f"{n} {r['client_cpu_percent']}%" for n, r in results.items())
    print(f"load client CPU (share of one core): {client}")
    if not report["meets_target"]:
        print("hint: `python -m bench --profile` shows where GET /support spends its time")


# --------------------------------------------------------------------------
# Profiling (in-process, through the Flask test client)


def _group(filename: str) -> str:
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    root = str(ROOT).replace("\\", "/") + "/"
    if path.startswith(root):
        rel = path[len(root) :]
        if rel.startswith("templates/"):
            return "templates (compiled Jinja)"
        return rel.removesuffix(".py").replace("/", ".")
    if path.startswith("~") or path.startswith("<"):
        return "builtins"
    return "stdlib"


def _short(filename: str, line: int, func: str) -> str:
    group = _group(filename)
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{group}:{base}:{line}({func})" if group != "builtins" else func


def run_profile(requests: int) -> int:
    """In-process: time bare, stack and ours, then cProfile GET /support."""
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="donations-bench-") as tmp:
        env = app_environment(Path(tmp), 5000)
        prepare_database(env)
        from bench import bare_app
        from donations import create_app

        app = add_floor_route(create_app(env))
        cases = [
            ("bare", bare_app.app.test_client(), PATH),
            ("stack", app.test_client(), FLOOR_PATH),
            ("ours", app.test_client(), PATH),
        ]

        def hit(client: Any, path: str) -> None:
            response = client.get(path, headers=HEADERS)
            if response.status_code != 200:
                raise SystemExit(f"bench: GET {path} answered {response.status_code}")

        # CPU time of this process, best of three: steadier than wall time on a
        # shared machine. The test client adds its own cost to all three alike.
        timings: dict[str, float] = {}
        for name, client, path in cases:
            for _ in range(50):
                hit(client, path)
            best = math.inf
            for _ in range(3):
                t0 = time.process_time()
                for _ in range(requests):
                    hit(client, path)
                best = min(best, time.process_time() - t0)
            timings[name] = best / requests
        _, ours_client, _ = cases[2]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            hit(ours_client, PATH)
        profiler.disable()

    print(f"in-process, Flask test client (no gunicorn), CPU per request, best of 3 x {requests}:")
    for name, _, path in cases:
        print(
            f"  {name:5} {timings[name] * 1e6:7.0f} us   bare/{name} "
            f"{timings['bare'] / timings[name]:.3f}   GET {path}"
        )
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    scale = timings["ours"] / (total / requests)  # undo the profiler's overhead, roughly
    groups: dict[str, float] = {}
    for (filename, _, _), (_, _, tt, _, _) in raw.items():
        groups[_group(filename)] = groups.get(_group(filename), 0.0) + tt
    print(
        f"\nGET /support under cProfile: {total / requests * 1e6:.0f} us/request with the "
        "profiler's overhead; the us columns below are scaled back to the unprofiled time."
    )
    print("own time by package:")
    for name, tt in sorted(groups.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {100 * tt / total:5.1f}%  {tt / requests * scale * 1e6:6.0f} us  {name}")

    print("\ncumulative time of app and library functions (per request):")
    rows = sorted(raw.items(), key=lambda kv: -kv[1][3])
    shown = 0
    for (filename, line, func), (_, nc, _, ct, _) in rows:
        if _group(filename) in ("builtins", "stdlib", "werkzeug", "flask", "bench.support_page"):
            continue
        print(
            f"  {100 * ct / total:5.1f}%  {ct / requests * scale * 1e6:6.0f} us  "
            f"{nc / requests:6.1f} calls  {_short(filename, line, func)}"
        )
        shown += 1
        if shown == 30:
            break
    return 0


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="GET /support under gunicorn vs. a bare Flask endpoint (ratio).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short run: 1 s warm-up, 2 rounds of 2 s per server"
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per server (default 10)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per server (default 2)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 2)")
    parser.add_argument(
        "--connections", type=int, default=4, help="concurrent keep-alive connections (default 4)"
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="gunicorn gthread threads per server (default 4)"
    )
    parser.add_argument(
        "--target", type=float, default=0.6, help="minimum acceptable ours/bare ratio (default 0.6)"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin server and client to separate cores"
    )
    parser.add_argument(
        "--no-stack",
        action="store_true",
        help="skip the diagnostic 'stack' server (our app, static view)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=500,
        metavar="N",
        help="instead: cProfile N in-process GET /support requests (default 500)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        return run_profile(args.profile)
    quick = args.quick
    plan = Plan(
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 2.0),
        seconds=args.seconds if args.seconds is not None else (4.0 if quick else 10.0),
        rounds=args.rounds if args.rounds is not None else 2,
        connections=args.connections,
        threads=args.threads,
        target=args.target,
        pin=not args.no_pin,
        floor=not args.no_stack,
    )
    if plan.rounds < 1 or plan.seconds <= 0 or plan.connections < 1 or plan.threads < 1:
        raise SystemExit("bench: rounds, seconds, connections and threads must be positive")
    return run_benchmark(plan)


if __name__ == "__main__":
    raise SystemExit(main())
