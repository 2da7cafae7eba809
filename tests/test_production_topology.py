"""The README's production topology, from the Procfile, in use (devtools/production.py)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import BACKEND
from tests.harness import ROOT


@pytest.mark.skipif(
    BACKEND != "postgresql", reason="production runs on PostgreSQL: the PostgreSQL run covers it"
)
def test_web_worker_and_beat_take_a_gift_and_survive_a_reload() -> None:
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    done = subprocess.run(
        [sys.executable, "-m", "devtools.production"],
        cwd=ROOT,
        env={**os.environ, "PRODUCTION_CHECK_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in (
        "migrated a new PostgreSQL database",
        "web, worker and beat ready",
        "one receipt",
        "none failed",
        "/metrics counted the webhook",
    ):
        assert step in done.stdout, done.stdout


@pytest.mark.skipif(
    BACKEND != "postgresql", reason="production runs on PostgreSQL: the PostgreSQL run covers it"
)
def test_a_short_load_loses_nothing_and_its_checks_see_what_would_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from devtools import load, production

    # Its own Redis database: a worker left on another run's queue would take its tasks.
    redis_url = os.environ.get("TEST_LOAD_REDIS_URL", "redis://127.0.0.1:6379/11")
    monkeypatch.setattr(production, "REDIS_URL", redis_url)
    args = argparse.Namespace(
        minutes=8 / 60, checkouts_per_second=2, views_per_second=50, drain_seconds=60
    )
    with production.topology(print, load.SETTINGS, load=True) as top:
        run = load.drive(top, args)
        seen = load.observe(top)
        assert not (top.logs.parent / "simulator.pickle").exists()  # in memory only
    found, problems = load.verify(run, seen)
    assert problems == [], "\n".join(load.report(run, args) + found + problems)
    assert (run.views.ok, run.checkouts.ok) == (400, 16)
    assert load.shortfalls(run, args) == []
    paid = sorted(gift.intent or "" for gift in run.gifts)
    assert sorted(i for i, (status, _) in seen.intents.items() if status == "succeeded") == paid
    assert sorted(row[0] or "" for row in seen.ledger) == paid
    assert sorted(seen.recipients) == sorted(gift.email for gift in run.gifts)
    assert seen.answers["5xx"] == 0
    assert seen.answers["2xx"] >= 400 + 16 * 4

    # The same checks on the same run, with one thing lost or doubled each time.
    first = seen.ledger[0]
    for changed, expected in (
        ({"ledger": seen.ledger[1:]}, "1 payments missing from the ledger"),
        ({"ledger": [*seen.ledger, first]}, "1 payments in the ledger twice"),
        ({"ledger": [(first[0], "pending", *first[2:]), *seen.ledger[1:]]}, "wrong status"),
        ({"ledger": [(*first[:2], first[2] + 1, first[3]), *seen.ledger[1:]]}, "wrong status"),
        ({"recipients": seen.recipients - Counter([first[3]])}, "1 donors without a receipt"),
        ({"recipients": seen.recipients + Counter([first[3]])}, "1 addresses mailed more than"),
        ({"receipts": [(first[3], "queued"), *seen.receipts[1:]]}, "1 receipts not sent"),
        ({"answers": seen.answers + Counter({"5xx": 1})}, "1 answers 5xx"),
    ):
        problems = load.verify(run, dataclasses.replace(seen, **changed))[1]
        assert any(expected in problem for problem in problems), (expected, problems)
