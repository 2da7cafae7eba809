"""Checks at the edge of every request: what a browser or a stranger can send us.

- ``safe_path``: a redirect target from the request, kept to a path on this site.
- ``HostGuard``: a malformed ``Host`` header is refused before Flask sees it
  (Werkzeug cannot build URLs for it, so even the error page would fail).
- ``refuse_unstorable_input``: NUL bytes and control characters in the path,
  the query string or a form are refused with 400 (PostgreSQL cannot store NUL;
  SQLite would, and the two databases must behave alike).
- ``signing_keys``, ``signed_value``, ``signed_id``: the keys our links are
  signed with, and what a genuine signed token carries (None for any other).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from flask import Flask, abort, current_app
from flask.globals import request_ctx
from itsdangerous import BadData, Serializer
from werkzeug.routing import IntegerConverter, Map

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# A DNS name (labels of letters, digits and hyphens, 63 each, 253 in all), an IPv4
# address or a bracketed IPv6 address, with an optional port.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(
    rf"^(?:(?:{_LABEL}\.)*{_LABEL}\.?|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?$", re.ASCII
)
MAX_HOST = 253 + 6

_View = TypeVar("_View", bound=Callable[..., Any])


def valid_host(host: str) -> bool:
    return len(host) <= MAX_HOST and bool(_HOST.match(host))


class HostGuard:
    """WSGI middleware: 400 for a ``Host`` header that is not a host name."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host is not None and not valid_host(host):
            body = b"400 Bad Request: the Host header is not a host name.\n"
            start_response(
                "400 Bad Request",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.app(environ, start_response)


def _control_character(text: str) -> bool:
    # Tab, CR and LF are ordinary in a textarea; every other C0/C1 control and
    # NUL are not something a person types. A printable string has none (the
    # usual case, checked in C); only others are looked at character by character.
    if text.isprintable():
        return False
    return any(unicodedata.category(ch) == "Cc" and ch not in "\t\r\n" for ch in text)


def _unstorable(values: Iterable[tuple[str, str]]) -> bool:
    return any(_control_character(key) or _control_character(value) for key, value in values)


def takes_json(view: _View) -> _View:
    """Mark a view that reads a JSON body itself (the Stripe webhook).

    Every other view takes forms only: Flask-WTF would otherwise read a JSON body
    as form data, and a list or a number there is not a form.
    """
    view.takes_json = True  # type: ignore[attr-defined]
    return view


def refuse_unstorable_input() -> None:
    """``before_request``: 400 for control characters in the path, query or form;
    415 for a JSON body sent to a view that takes forms."""
    req = request_ctx.request
    if _control_character(req.path):
        abort(400)
    if not req.environ.get("QUERY_STRING") and not req.environ.get("CONTENT_TYPE"):
        return  # no query and no body: nothing more to look at (most GETs)
    if _unstorable(req.args.items(multi=True)):
        abort(400)
    view = current_app.view_functions.get(req.endpoint or "")
    if getattr(view, "takes_json", False):
        return
    if req.is_json:
        abort(415)
    form_body = req.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
    if form_body and _unstorable(req.form.items(multi=True)):
        abort(400)


def safe_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``.

    Browsers strip tab, CR and LF from URLs and read ``\\`` as ``/``, so
    ``/\\t/evil.example`` and ``/\\evil.example`` are really ``//evil.example``:
    a link to another host. Only a plain absolute path is kept.
    """
    if not target or len(target) > 2000:
        return default
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in target):
        return default
    if "\\" in target or not target.startswith("/") or target.startswith("//"):
        return default
    # Percent-encoded tricks decode to the same: check the decoded path too.
    decoded = unquote(target)
    if "\\" in decoded or decoded.startswith("//") or _control_character(decoded):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# The largest id an INTEGER column holds on PostgreSQL: a longer one is a 404, not
# an "integer out of range" from the database.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route, bounded by what the database can hold."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def signing_keys() -> list[str]:
    """Keys for itsdangerous, oldest first: links signed with a fallback key still
    verify, new ones are signed with SECRET_KEY (the last)."""
    fallbacks = current_app.config.get("SECRET_KEY_FALLBACKS") or []
    return [*reversed(fallbacks), current_app.config["SECRET_KEY"]]


def signed_value(
    serializer: Serializer[str],
    token: str | None,
    *,
    max_length: int,
    max_age: timedelta | None = None,
) -> Any:
    """What a genuine ``token`` carries; None for a missing, oversized, tampered or expired one.

    The length is checked first: a token longer than any we sign is refused
    without spending a signature check on it. ``max_age`` is for a timed
    serializer's tokens.
    """
    if not token or len(token) > max_length:
        return None
    try:
        if max_age is None:
            return serializer.loads(token)
        return serializer.loads(token, max_age=int(max_age.total_seconds()))
    except BadData:
        return None


def signed_id(
    serializer: Serializer[str],
    token: str | None,
    *,
    max_length: int,
    max_age: timedelta | None = None,
) -> int | None:
    """The row id a genuine ``token`` carries; None for anything else (a bool is not an id)."""
    value = signed_value(serializer, token, max_length=max_length, max_age=max_age)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Route arguments that are secrets in the path: whoever reads an access log must
# not be able to open someone's payment, thank-you, unsubscribe or dunning page.
SECRET_ARGUMENTS = ("token", "link")
REDACTED = "[redacted]"


def secret_path_patterns(url_map: Map) -> list[re.Pattern[str]]:
    """A regex per route with a secret segment (from the URL map, so a route added
    later with a ``<token>`` is covered too); the secret is group 1."""
    segment = r"[^/?#\s\"]+"
    patterns = []
    for rule in url_map.iter_rules():
        if not any(name in SECRET_ARGUMENTS for name in rule.arguments):
            continue
        pattern = ""
        for is_argument, part in _rule_parts(rule.rule):
            if not is_argument:
                pattern += re.escape(part)
            elif part in SECRET_ARGUMENTS:
                pattern += f"({segment})"
            else:
                pattern += f"(?:{segment})"
        patterns.append(re.compile(pattern))
    return patterns


def redact_secret_paths(text: str, patterns: list[re.Pattern[str]]) -> str:
    def hide(match: re.Match[str]) -> str:
        whole, start = match.group(0), match.start()
        a, b = match.span(1)
        return whole[: a - start] + REDACTED + whole[b - start :]

    for pattern in patterns:
        text = pattern.sub(hide, text)
    return text


class SecretPathFilter(logging.Filter):
    """Hides path tokens in access-log lines (Werkzeug's and gunicorn's)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__()
        self.patterns = secret_path_patterns(url_map)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_secret_paths(record.msg, self.patterns)
        if isinstance(record.args, dict):
            record.args = {
                k: redact_secret_paths(v, self.patterns) if isinstance(v, str) else v
                for k, v in record.args.items()
            }
        elif isinstance(record.args, tuple):
            record.args = tuple(
                redact_secret_paths(v, self.patterns) if isinstance(v, str) else v
                for v in record.args
            )
        return True


ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


def register_log_redaction(app: Flask) -> None:
    """After the blueprints: the filter reads the finished URL map."""
    redactor = SecretPathFilter(app.url_map)
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, SecretPathFilter)]:
            logger.removeFilter(old)
        logger.addFilter(redactor)


def _rule_parts(rule: str) -> Iterable[tuple[bool, str]]:
    last = 0
    for match in re.finditer(r"<(?:[^>:]+:)?([^>]+)>", rule):
        yield False, rule[last : match.start()]
        yield True, match.group(1)
        last = match.end()
    yield False, rule[last:]


def register_request_guards(app: Flask) -> None:
    """Before the blueprints: the id converter must be in place when routes are added."""
    app.url_map.converters["int"] = IdConverter
    app.wsgi_app = HostGuard(app.wsgi_app)  # type: ignore[method-assign]
    app.before_request(refuse_unstorable_input)
