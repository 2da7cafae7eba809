"""The embed configuration's baseline: bare Flask returning fixed JSON bytes.

The runner sets BENCH_EMBED_BODY to a file holding the real configuration's
bytes, so both servers send the same body.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response

BODY = (
    Path(os.environ["BENCH_EMBED_BODY"]).read_bytes() if "BENCH_EMBED_BODY" in os.environ else b"{}"
)

app = Flask(__name__)


@app.get("/embed/config.json")
def config() -> Response:
    return Response(BODY, mimetype="application/json")
