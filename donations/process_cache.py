"""Values a web process keeps for a few seconds: what the busiest pages read on every request.

Each is kept in ``app.extensions[name]`` as ``(value, deadline)`` on the
monotonic clock, so it belongs to one app in one process, and a change this
process makes (or a test) drops it by name with :func:`forget_kept`. Other
processes see a change when their copy runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app

T = TypeVar("T")


def kept_in_process(name: str, seconds: float, read: Callable[[], T]) -> T:
    """``read()``, or what it returned less than ``seconds`` ago in this process."""
    cached = current_app.extensions.get(name)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        kept: T = cached[0]
        return kept
    value = read()
    current_app.extensions[name] = (value, now + seconds)
    return value


def forget_kept(name: str) -> None:
    """Read the value afresh on its next use."""
    current_app.extensions.pop(name, None)
