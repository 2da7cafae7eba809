"""Run the adapted Stripe simulator: ``python -m devtools.simulator``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from devtools.simulator.adapt import build_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument(
        "--state", type=Path, help="state file (pickle); without it, state is kept in memory only"
    )
    parser.add_argument("--webhook-url", action="append", default=[])
    parser.add_argument("--webhook-secret", action="append", default=[])
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args(argv)
    if len(args.webhook_url) != len(args.webhook_secret):
        parser.error("give one --webhook-secret per --webhook-url")
    logging.basicConfig(level=logging.INFO, format="simulator: %(message)s")
    app = build_app(
        args.state,
        list(zip(args.webhook_url, args.webhook_secret, strict=True)),
        from_scratch=args.from_scratch,
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
