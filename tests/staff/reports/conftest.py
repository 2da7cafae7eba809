"""Signed-in staff and the reporting time zone for the report tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask

from tests.staff.conftest import make_staff, signed_in  # noqa: F401 - fixtures

NEW_YORK = "America/New_York"


@pytest.fixture
def new_york(app: Flask) -> Iterator[str]:
    """Report in New York time: UTC-5 in winter, UTC-4 from 8 March 2026."""
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(settings, reporting_time_zone=NEW_YORK)
    yield NEW_YORK
    app.config["SETTINGS"] = settings
