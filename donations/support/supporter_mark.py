"""The supporter mark: a thank-you page tells the article's embed to stay quiet.

The thank-you page links back to the article with ``#dn-supporter=UNTIL.SIG``
in the fragment (never sent to any server); the embed keeps it in the
article origin's localStorage and stays quiet until UNTIL. It names no one:
the same mark for every gift of that second. The signature lets our server
tell a mark it issued (see :func:`supporter_mark_valid`) from a typed one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import current_app

from donations.ask.services import load_ask_config
from donations.supporters.attribution import clean_url

_MARK_CONTEXT = b"donations.embed.supporter-mark:"


def _mark_signature(until: int) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, _MARK_CONTEXT + str(until).encode(), hashlib.sha256).hexdigest()[:32]


def supporter_mark(now: float | None = None) -> str:
    days = load_ask_config().embed_caps()["supporter_days"]
    until = int(now if now is not None else time.time()) + days * 86_400
    return f"{until}.{_mark_signature(until)}"


def supporter_mark_valid(mark: str, now: float | None = None) -> bool:
    until_text, _, signature = (mark or "")[:80].partition(".")
    if not until_text.isdigit() or len(until_text) > 12:
        return False
    until = int(until_text)
    if until < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature, _mark_signature(until))


def article_return_url(source: str | None) -> str | None:
    """The article the reader came from, with the supporter mark in the fragment."""
    url = clean_url(source)
    if url is None:
        return None
    return f"{url.split('#', 1)[0]}#dn-supporter={supporter_mark()}"
