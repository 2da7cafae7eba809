"""Public responses: the same bytes for every anonymous reader, built once, cacheable.

A reader who carries no cookie of ours gets a page that depends only on the
URL, their ``Accept-Language`` and our settings. ``public_response`` serves
such a page from a bounded per-process store, keyed on exactly those, with

* ``Cache-Control: public, max-age=0, s-maxage=…, stale-while-revalidate=…``
  so a CDN or the reverse proxy may keep it, and a browser revalidates it
  (a 304) before reuse -- after a language switch its reader has a cookie and
  must get their own page, not the copy the browser kept;
* an ``ETag`` derived from the settings' version and the bytes, answered with
  ``304 Not Modified`` on ``If-None-Match``;
* ``Vary: Accept-Language`` and nothing else (no ``Vary: Cookie``: the session
  is neither read into the answer nor written back).

A reader who does carry a cookie (a chosen language, a staff session) may see
something of their own, so their answer is built per request and marked
``private``. Anything that would set a cookie on a public answer turns it
private too (``guard_public_response``), so a cache never stores a cookie.

The view supplies the settings' version and a function that renders the
page; no session, no database and no locale negotiation happen on a hit.
Used by the ask (``GET /support``) and meant for any other public page or
public JSON (the embed's configuration).

``PublicPageCache`` then keeps the finished answer -- status, every header
(security headers included, so they are computed once) and body -- in front
of Flask for ``FRESH_SECONDS``, the time the ask's settings are trusted
anyway, and serves a repeat of the same anonymous request without running
Flask at all, as a reverse-proxy cache in the process would. Only plain
``GET`` requests without any ``Cookie``, ``Authorization`` or
``If-None-Match`` header are answered there; everything else goes through.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

MAX_AGE_SECONDS = 60
STALE_SECONDS = 600
STORE_SIZE = 512
VARY = "Accept-Language"
FRESH_SECONDS = 5.0
ENVIRON_FLAG = "donations.public"
# The URL rule Flask matched, for the access metrics (donations.observability).
ROUTE_KEY = "donations.route"


@dataclass(frozen=True)
class PublicPage:
    body: bytes
    etag: str
    mimetype: str
    cache_control: str


class PublicStore:
    """A bounded, thread-safe LRU of built public pages (one per process)."""

    def __init__(self, size: int = STORE_SIZE) -> None:
        self.size = size
        self._pages: OrderedDict[tuple[object, ...], PublicPage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> PublicPage | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: tuple[object, ...], page: PublicPage) -> None:
        with self._lock:
            self._pages[key] = page
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()

    def __len__(self) -> int:
        return len(self._pages)


def store() -> PublicStore:
    found: PublicStore = current_app.extensions["public_store"]
    return found


def anonymous() -> bool:
    """No cookie of ours came with the request: nothing per-reader can shape the answer."""
    return current_app.config["SESSION_COOKIE_NAME"] not in request.cookies


def public_response(
    version: str,
    render: Callable[[], str | bytes],
    *,
    mimetype: str = "text/html",
    max_age: int = MAX_AGE_SECONDS,
    stale: int = STALE_SECONDS,
) -> Response:
    """The answer for this URL, language and settings ``version``, built at most once.

    ``render`` is called only on a miss (or for a reader with a cookie).
    """
    if not anonymous():
        response = current_app.response_class(render(), mimetype=mimetype)
        response.headers["Cache-Control"] = "private, no-cache"
        response.vary.add(VARY)
        return response
    key = (
        request.endpoint,
        request.full_path,
        request.headers.get("Accept-Language", "")[:200],
        version,
        mimetype,
    )
    page = store().get(key)
    if page is None:
        body = render()
        if session.modified:  # e.g. a language chosen in the URL: this reader's own
            refuse_public()
        data = body.encode() if isinstance(body, str) else body
        digest = hashlib.sha256(version.encode() + b"\0" + data).hexdigest()[:32]
        page = PublicPage(
            data,
            digest,
            mimetype,
            # Browsers revalidate every time (max-age=0): a reader who then
            # chooses a language carries a cookie and gets their own page,
            # never the copy their browser kept; shared caches keep it.
            f"public, max-age=0, s-maxage={max_age}, stale-while-revalidate={stale}",
        )
        if not g.get("public_refused"):
            store().put(key, page)
    g.public_response = True
    if not g.get("public_refused"):
        request.environ[ENVIRON_FLAG] = True
    if page.etag in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        response = current_app.response_class(page.body, mimetype=page.mimetype)
    response.set_etag(page.etag)
    response.headers["Cache-Control"] = page.cache_control
    response.headers["Vary"] = VARY
    return response


def refuse_public() -> None:
    """Called by code that makes this request's answer per-reader (e.g. sets a cookie)."""
    g.public_refused = True
    request.environ.pop(ENVIRON_FLAG, None)


def guard_public_response(response: Response) -> Response:
    """``after_request``: a public answer that would carry a cookie becomes private."""
    if g.get("public_response") and (g.get("public_refused") or "Set-Cookie" in response.headers):
        g.public_response = False
        request.environ.pop(ENVIRON_FLAG, None)
        response.headers["Cache-Control"] = "private, no-cache"
        response.vary.add("Cookie")
    return response


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with nothing to do for a reader without one.

    Without a cookie no serializer is built on the way in; a public answer
    (``public_response``) is not given the session on the way out, so it
    carries neither ``Set-Cookie`` nor ``Vary: Cookie`` -- unless the
    request changed the session, which makes the answer private instead.
    """

    def open_session(self, app: Flask, request_: object) -> SecureCookieSession | None:
        # Without a Cookie header (most readers) there is nothing to parse.
        has_cookies = "HTTP_COOKIE" in getattr(request_, "environ", {})
        cookies = getattr(request_, "cookies", {}) if has_cookies else {}
        if app.config["SESSION_COOKIE_NAME"] not in cookies and app.secret_key:
            return self.session_class()
        return super().open_session(app, request_)  # type: ignore[arg-type]

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if g.get("public_response"):
            if not session.modified:
                return
            refuse_public()
            guard_public_response(response)
        super().save_session(app, session, response)


if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_BYPASS = ("HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_IF_NONE_MATCH")


@dataclass(frozen=True)
class _Finished:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    until: float
    route: str | None


class PublicPageCache:
    """WSGI middleware: repeats of an anonymous public answer, served from memory.

    Flask marks a request whose answer is public (``public_response``);
    the finished 200 answer is kept for ``fresh`` seconds under the request's
    path, query, host, scheme and ``Accept-Language``, in a bounded LRU.
    """

    def __init__(
        self, app: WSGIApplication, fresh: float = FRESH_SECONDS, size: int = STORE_SIZE
    ) -> None:
        self.app = app
        self.fresh = fresh
        self.size = size
        self._answers: OrderedDict[tuple[str, ...], _Finished] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or any(h in environ for h in _BYPASS):
            return self.app(environ, start_response)
        key = (
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_HOST", ""),
            environ.get("wsgi.url_scheme", ""),
            environ.get("HTTP_X_FORWARDED_PROTO", ""),
            environ.get("HTTP_X_FORWARDED_HOST", ""),
            environ.get("HTTP_ACCEPT_LANGUAGE", "")[:200],
        )
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
        if found is not None and found.until > time.monotonic():
            if found.route is not None:
                environ[ROUTE_KEY] = found.route
            start_response(found.status, list(found.headers))
            return [found.body]
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
            seen.append((status, headers))
            return start_response(status, headers, exc_info)  # type: ignore[arg-type]

        chunks = self.app(environ, capture)  # type: ignore[arg-type]
        if not environ.get(ENVIRON_FLAG) or not seen or not seen[-1][0].startswith("200 "):
            return chunks
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = seen[-1]
        if not any(name.lower() == "set-cookie" for name, _ in headers):
            finished = _Finished(
                status, list(headers), body, time.monotonic() + self.fresh, environ.get(ROUTE_KEY)
            )
            with self._lock:
                self._answers[key] = finished
                while len(self._answers) > self.size:
                    self._answers.popitem(last=False)
        return [body]


def init_app(app: Flask) -> None:
    app.extensions["public_store"] = PublicStore()
    app.session_interface = SessionInterface()
    app.after_request(guard_public_response)
    cache = PublicPageCache(app.wsgi_app)
    app.extensions["public_page_cache"] = cache
    app.wsgi_app = cache  # type: ignore[method-assign]


def forget_public_pages(app: Flask) -> None:
    """Drop every kept public answer (after the settings they show changed)."""
    app.extensions["public_store"].clear()
    app.extensions["public_page_cache"].clear()
