"""The README's production topology, from the Procfile, in use (devtools/production.py)."""

from __future__ import annotations

import os
import subprocess
import sys

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
