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
import cProfile
import http.client
import math
import os
import platform
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.floor_app import FLOOR_PATH, add_floor_route
from bench.harness import (
    HOST,
    ROOT,
    Outcome,
    Server,
    app_environment,
    choose_cpus,
    flask,
    free_port,
    gunicorn_command,
    machine_load,
    running,
    server_settings,
    start_process,
    wait_until,
    write_results,
)
from bench.loadgen import LoadResult, run_load

PATH = "/support"
# A returning reader from the UK: exercises locale negotiation and the
# territory -> currency lookup the ask does for every visitor.
HEADERS = {
    "User-Agent": "donations-bench/1",
    "Accept": "text/html",
    "Accept-Language": "en-GB,en;q=0.9,ru;q=0.8",
    "Accept-Encoding": "identity",
}


@dataclass(frozen=True)
class Plan:
    warmup: float
    seconds: float  # measured seconds per server, split across rounds
    rounds: int
    connections: int
    threads: int
    target: float
    stack_target: float
    pin: bool
    floor: bool

    @property
    def leg(self) -> float:
        return self.seconds / self.rounds


@dataclass(frozen=True)
class Target:
    name: str
    app_spec: str
    path: str
    what: str


BARE = Target("bare", "bench.bare_app:app", PATH, "bare Flask, static string")
STACK = Target("stack", "bench.floor_app:create()", FLOOR_PATH, "our app stack, static string")
OURS = Target("ours", "wsgi:app", PATH, "our app, GET /support")


def prepare_database(env: dict[str, str]) -> None:
    flask(env, "db", "upgrade")
    flask(env, "demo", "seed")


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=HEADERS)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, path: str) -> bytes:
    page: list[bytes] = []

    def ready() -> bool:
        status, body = fetch(server.port, path)
        if status != 200:
            raise SystemExit(
                f"bench: {server.name} answered GET {path} with {status}:\n" + server.log_tail()
            )
        page.append(body)
        return True

    wait_until(server, ready, timeout=30)
    return page[-1]


def start_server(
    target: Target, env: dict[str, str], port: int, plan: Plan, workdir: Path, cpus: set[int] | None
) -> Server:
    command = gunicorn_command(target.app_spec, port, plan.threads)
    return start_process(target.name, command, env, port, workdir, cpus)


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


def run_benchmark(plan: Plan) -> Outcome:
    started = time.monotonic()
    server_cpus, client_cpus = choose_cpus(plan.pin)
    every_cpu = os.sched_getaffinity(0) if client_cpus else None
    targets = [BARE, STACK, OURS] if plan.floor else [BARE, OURS]
    with tempfile.TemporaryDirectory(prefix="donations-bench-") as tmp, running() as servers:
        workdir = Path(tmp)
        ports = {t.name: free_port() for t in targets}
        env = app_environment(workdir, f"sqlite:///{workdir / 'bench.db'}", ports["ours"])
        print("bench: preparing a SQLite database (db upgrade, demo seed) ...", flush=True)
        prepare_database(env)
        servers["ours"] = start_server(OURS, env, ports["ours"], plan, workdir, server_cpus)
        page = wait_ready(servers["ours"], OURS.path)
        if b'id="ask-form"' not in page:
            raise SystemExit("bench: GET /support did not return the ask page")
        # The baselines send a static page of exactly our page's size.
        base_env = dict(env, BENCH_BARE_BYTES=str(len(page)))
        for t in targets:
            if t.name != "ours":
                servers[t.name] = start_server(
                    t, base_env, ports[t.name], plan, workdir, server_cpus
                )
        sizes = {t.name: len(wait_ready(servers[t.name], t.path)) for t in targets}
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)

        print(
            f"bench: gunicorn 1 worker x {plan.threads} threads (gthread) per server; "
            f"{plan.connections} keep-alive connections; {plan.warmup:g} s warm-up, "
            f"then {plan.rounds} rounds of {plan.leg:g} s per server, one server at a time"
            + (" (servers and client pinned to separate cores)" if server_cpus else "")
            + f"; load average {machine_load()}",
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
    if every_cpu:
        os.sched_setaffinity(0, every_cpu)  # `bench all` runs more after this one

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
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pinned": bool(server_cpus),
        },
        "settings": {
            "server": server_settings(plan.threads),
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
    outcome = Outcome(0, {"ask ours/bare": (headline, f">= {plan.target:g}")})
    if plan.floor:
        report["stack_ratio"] = round(ratio("stack", "bare"), 3)
        report["stack_round_ratios"] = round_ratios("stack", "bare")
        report["page_ratio"] = round(ratio("ours", "stack"), 3)
        report["stack_target"] = plan.stack_target
        outcome.ratios["ask stack/bare"] = (ratio("stack", "bare"), f">= {plan.stack_target:g}")
        report["meets_target"] = report["meets_target"] and (
            ratio("stack", "bare") >= plan.stack_target
        )
    print_report(report)
    write_results("support_page", report)

    errors = sum(r["errors"] for r in results.values())
    if errors:
        print(f"bench: INVALID RUN: {errors} failed requests", file=sys.stderr)
        outcome.status = 2
    elif not report["meets_target"]:
        outcome.status = 1
    return outcome


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
    verdict = "meets" if report["ratio"] >= report["target"] else "BELOW"
    per_round = ", ".join(f"{x:.3f}" for x in report["round_ratios"])
    print(
        f"\nratio ours/bare: {report['ratio']:.3f} (rounds: {per_round}) "
        f"-- {verdict} the {report['target']:g}x target"
    )
    if "stack_ratio" in report:
        per_round = ", ".join(f"{x:.3f}" for x in report["stack_round_ratios"])
        stack_verdict = "meets" if report["stack_ratio"] >= report["stack_target"] else "BELOW"
        print(
            f"  stack/bare: {report['stack_ratio']:.3f} (rounds: {per_round}) -- {stack_verdict} "
            f"the {report['stack_target']:g}x target; our hooks and extensions around a view "
            "that does nothing"
        )
        print(
            f"  ours/stack: {report['page_ratio']:.3f} -- what the /support view costs (above 1: "
            "repeats are served in front of Flask, donations.public)"
        )
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
        env = app_environment(Path(tmp), f"sqlite:///{Path(tmp) / 'bench.db'}")
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--stack-target",
        type=float,
        default=0.8,
        help="minimum acceptable stack/bare ratio (default 0.8)",
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


def run(args: argparse.Namespace) -> Outcome:
    if args.profile:
        return Outcome(run_profile(args.profile))
    quick = args.quick
    plan = Plan(
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 2.0),
        seconds=args.seconds if args.seconds is not None else (4.0 if quick else 10.0),
        rounds=args.rounds if args.rounds is not None else 2,
        connections=args.connections,
        threads=args.threads,
        target=args.target,
        stack_target=args.stack_target,
        pin=not args.no_pin,
        floor=not args.no_stack,
    )
    if plan.rounds < 1 or plan.seconds <= 0 or plan.connections < 1 or plan.threads < 1:
        raise SystemExit("bench: rounds, seconds, connections and threads must be positive")
    return run_benchmark(plan)
