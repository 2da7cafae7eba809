"""GET /embed/config.json under gunicorn, as a ratio against bare Flask; and the embed's size.

Two servers with identical gunicorn settings on free loopback ports, loaded
one at a time in alternating rounds:

* bare: ``bench.bare_embed_app:app`` returning the same JSON bytes;
* ours: the real app (``wsgi:app``) on a migrated, seeded SQLite database,
  serving the configuration (ETag, Cache-Control: public, CORS).

Behind a CDN readers never reach either; this is the cost of a cache miss.
It also prints the gzipped bytes of our own JS + CSS (the budget is 15 KB)
and of the configuration.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import tempfile
from pathlib import Path

from bench.harness import (
    HOST,
    ROOT,
    Outcome,
    app_environment,
    flask,
    free_port,
    gunicorn_command,
    running,
    start_process,
    wait_until,
    write_results,
)
from bench.loadgen import run_load

PATH = "/embed/config.json?lang=en"
ASSETS = ROOT / "static" / "embed"
BUDGET = 15 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short legs (a smoke run)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per server")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--target", type=float, default=0.5, help="ours/bare at least")


def gzipped(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9))


def fetch(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", PATH, headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run(args: argparse.Namespace) -> Outcome:
    seconds, rounds = (4.0, 2) if args.quick else (args.seconds, args.rounds)
    own = {name: gzipped((ASSETS / name).read_bytes()) for name in ("embed.js", "embed.css")}
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp, running() as servers:
        workdir = Path(tmp)
        port, bare_port = free_port(), free_port()
        env = app_environment(workdir, f"sqlite:///{workdir / 'bench.db'}", port)
        flask(env, "db", "upgrade")
        flask(env, "demo", "seed")
        servers["ours"] = start_process(
            "ours", gunicorn_command("wsgi:app", port), env, port, workdir
        )
        body: list[bytes] = []

        def ours_ready() -> bool:
            status, data = fetch(port)
            body.append(data)
            return status == 200

        wait_until(servers["ours"], ours_ready)
        (workdir / "body.json").write_bytes(body[-1])
        bare_env = {**env, "BENCH_EMBED_BODY": str(workdir / "body.json")}
        servers["bare"] = start_process(
            "bare",
            gunicorn_command("bench.bare_embed_app:app", bare_port),
            bare_env,
            bare_port,
            workdir,
        )
        wait_until(servers["bare"], lambda: fetch(bare_port)[0] == 200)
        totals = {"ours": [0, 0.0, 0], "bare": [0, 0.0, 0]}
        for index in range(rounds):
            order = ("ours", "bare") if index % 2 == 0 else ("bare", "ours")
            for name in order:
                result = run_load(
                    HOST,
                    port if name == "ours" else bare_port,
                    PATH,
                    connections=args.connections,
                    duration=seconds / rounds,
                    record=False,
                )
                totals[name][0] += result.requests
                totals[name][1] += result.seconds
                totals[name][2] += result.errors
    rps = {name: (n / s if s else 0.0) for name, (n, s, _) in totals.items()}
    ratio = rps["ours"] / rps["bare"] if rps["bare"] else 0.0
    errors = sum(e for _, _, e in totals.values())
    config_gz = gzipped(body[-1])
    print(f"bare  {rps['bare']:9.0f} req/s")
    print(f"ours  {rps['ours']:9.0f} req/s   ratio ours/bare {ratio:.3f} (target >= {args.target})")
    print(
        f"size  embed.js {own['embed.js']} B + embed.css {own['embed.css']} B gzipped = "
        f"{sum(own.values())} B (budget {BUDGET} B); "
        f"config {len(body[-1])} B, {config_gz} B gzipped"
    )
    write_results(
        "embed",
        {
            "rps": rps,
            "ratio": ratio,
            "errors": errors,
            "gzipped_bytes": {**own, "config.json": config_gz},
        },
    )
    status = 2 if errors else (0 if ratio >= args.target and sum(own.values()) <= BUDGET else 1)
    return Outcome(
        status,
        {
            "config ours/bare req/s": (ratio, f">= {args.target}"),
            "embed JS+CSS gzipped KB": (sum(own.values()) / 1024, "<= 15"),
        },
    )
