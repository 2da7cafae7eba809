"""`python -m bench [BENCHMARK] [options]`: the one entry point (see bench/README.md).

Each benchmark is a module with a docstring, ``add_arguments(parser)`` and
``run(args) -> Outcome``; list it in BENCHMARKS. Without a benchmark name the
ask (`support`) runs, so `python -m bench --profile` keeps working. `all`
runs the ask, webhook and export benchmarks and prints their ratios.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from bench.harness import Outcome, machine_load

BENCHMARKS = {
    "support": "bench.support_page",
    "webhooks": "bench.webhooks",
    "burst": "bench.webhook_burst",
    "exports": "bench.exports",
    "reminders": "bench.reminders",
    "embed": "bench.embed",
}
# What `make bench` (`python -m bench all`) runs, with these extra arguments.
ALL = {
    "support": [],
    "webhooks": [],
    "exports": [],
}
ALL_QUICK = {
    "support": ["--quick"],
    "webhooks": ["--quick"],
    "exports": ["--rows", "200000"],
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def _parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return parser


def run_one(name: str, argv: list[str]) -> Outcome:
    module = _module(name)
    outcome: Outcome = module.run(_parser(name, module).parse_args(argv))
    return outcome


def run_all(argv: list[str]) -> int:
    quick = "--quick" in argv
    outcomes: dict[str, Outcome] = {}
    for name, extra in (ALL_QUICK if quick else ALL).items():
        print(f"\n=== python -m bench {name} {' '.join(extra)}".rstrip(), flush=True)
        outcomes[name] = run_one(name, extra)
    print(f"\n=== ratios (load average at the end: {machine_load()})")
    for name, outcome in outcomes.items():
        verdict = {0: "met", 1: "NOT met", 2: "INVALID RUN"}.get(outcome.status, "?")
        for label, (value, target) in outcome.ratios.items():
            print(f"  {name:9} {label:34} {value:7.3f}   target {target:10} {verdict}")
    return max((o.status for o in outcomes.values()), default=0)


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        for name in BENCHMARKS:
            summary = (_module(name).__doc__ or "").strip().splitlines()[0]
            print(f"  {name:10} {summary}")
        print("  all        the ask, webhook and export ratios (--quick: shorter)")
        return 0
    if argv[:1] == ["all"]:
        return run_all(argv[1:])
    if argv[:1] and argv[0] in BENCHMARKS:
        return run_one(argv[0], argv[1:]).status
    return run_one("support", argv).status


raise SystemExit(main(sys.argv[1:]))
