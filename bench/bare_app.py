"""The baseline: a bare Flask app whose /support returns a static HTML page.

No extensions, no database, no templates: what Flask + gunicorn cost on this
machine for a page of the same size as the real ask. The runner sets
BENCH_BARE_BYTES to the size of the real /support response so both send
about the same number of bytes.
"""

from __future__ import annotations

import os

from flask import Flask

_HEAD = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
    "  <title>Support independent journalism</title>\n</head>\n<body>\n<main>\n"
)
_LINE = "  <p>We answer to our readers, not to owners or advertisers.</p>\n"
_TAIL = "</main>\n</body>\n</html>\n"


def static_page(size: int) -> str:
    """An ASCII HTML page of exactly ``size`` bytes (or the minimum shell)."""
    room = max(0, size - len(_HEAD) - len(_TAIL))
    body = _LINE * (room // len(_LINE))
    body += " " * (room - len(body))
    return _HEAD + body + _TAIL


PAGE = static_page(int(os.environ.get("BENCH_BARE_BYTES", "11500")))

app = Flask(__name__)


@app.get("/support")
def support() -> str:
    return PAGE
