"""CANCEL_REASONS and CANCEL_OFFERS: read, checked, every problem said at once."""

from __future__ import annotations

import pytest

from donations.config import load_settings
from tests.test_config import GOOD, problems


def test_the_defaults() -> None:
    settings = load_settings(GOOD)
    assert [key for key, _ in settings.cancel_reasons] == [
        "too_expensive",
        "not_reading",
        "other_causes",
        "temporary",
        "other",
    ]
    assert settings.cancel_offers == ("pause", "lower_amount", "annual", "reminder")


def test_reasons_built_in_and_own() -> None:
    settings = load_settings(
        {**GOOD, "CANCEL_REASONS": " too_expensive , moving:Moving  abroad ,other"}
    )
    assert settings.cancel_reasons == (
        ("too_expensive", ""),
        ("moving", "Moving abroad"),
        ("other", ""),
    )


@pytest.mark.parametrize(
    "value",
    [
        "unknown_builtin",
        "Too_Expensive",
        "too_expensive,too_expensive",
        "bad key:Label",
        "x:",
        "k:" + "y" * 81,
        "k:bell\x07",
        ",".join(f"r{n}:Reason {n}" for n in range(13)),
        "too_expensive,",
    ],
)
def test_bad_reasons_are_refused(value: str) -> None:
    (problem,) = problems({**GOOD, "CANCEL_REASONS": value})
    assert problem.startswith("CANCEL_REASONS must be 1 to 12 comma-separated reasons")


def test_offers() -> None:
    assert load_settings({**GOOD, "CANCEL_OFFERS": "reminder"}).cancel_offers == ("reminder",)
    assert load_settings({**GOOD, "CANCEL_OFFERS": "None"}).cancel_offers == ()
    assert load_settings({**GOOD, "CANCEL_OFFERS": "annual, pause"}).cancel_offers == (
        "annual",
        "pause",
    )
    for bad in ("pause,pause", "lower", "pause;reminder"):
        assert problems({**GOOD, "CANCEL_OFFERS": bad}) == [
            "CANCEL_OFFERS must be none or some of pause, lower_amount, annual, reminder."
        ]
