"""Security headers worked out once per view, not once per response.

Flask-Talisman rebuilds every header (its per-view options, the policy
strings) for each response. The values depend only on the view and on
whether the request came over HTTPS, so this subclass works them out the
first time and keeps them. Same headers, same per-view overrides
(``@talisman(...)``); a policy with a per-request nonce is never kept.

The after-request hook only chooses the view's list; ``SecurityHeaders``,
a WSGI middleware just outside Flask, adds it as the response starts: one
list join, where setting them on the response would check every value again
and copy it once more on the way out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import flask
from flask.globals import request_ctx
from flask_talisman import Talisman as _Talisman
from werkzeug.datastructures import Headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# What a view's answer carries: its headers, and their names in lower case.
_Chosen = tuple[list[tuple[str, str]], frozenset[str]]
ENVIRON_KEY = "donations.security_headers"


class Talisman(_Talisman):  # type: ignore[misc]
    def init_app(self, app: flask.Flask, **kwargs: Any) -> None:
        """Before anything else wraps ``app.wsgi_app``: the page cache must keep the headers."""
        self._options_by_view: dict[str | None, dict[str, Any]] = {}
        self._headers_by_view: dict[tuple[str | None, bool], _Chosen] = {}
        super().init_app(app, **kwargs)
        app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]

    def _get_local_options(self) -> dict[str, Any]:
        endpoint = flask.request.endpoint
        options = self._options_by_view.get(endpoint)
        if options is None:
            options = super()._get_local_options()
            self._options_by_view[endpoint] = options
        return options

    def _force_https(self) -> flask.Response | None:
        # Talisman's own check reads the request three times first; nothing
        # to redirect unless the view forces HTTPS and the request is plain HTTP.
        if not self._get_local_options()["force_https"] or _secure(request_ctx.request):
            return None
        return super()._force_https()  # type: ignore[no-any-return]

    def _set_response_headers(self, response: flask.Response) -> flask.Response:
        request = request_ctx.request
        key = (request.endpoint, _secure(request))
        chosen = self._headers_by_view.get(key)
        if chosen is None:
            built = Headers()
            super()._set_response_headers(_HeadersOnly(built))
            chosen = list(built.items()), frozenset(name.lower() for name, _ in built.items())
            if not self._get_local_options().get("content_security_policy_nonce_in"):
                self._headers_by_view[key] = chosen
        request.environ[ENVIRON_KEY] = chosen
        return response


def _secure(request: flask.Request) -> bool:
    return request.is_secure or request.environ.get("HTTP_X_FORWARDED_PROTO") == "https"


class _HeadersOnly:
    """What Talisman's header setters touch of a response: its headers."""

    def __init__(self, headers: Headers) -> None:
        self.headers = headers


class SecurityHeaders:
    """WSGI middleware: the headers Flask chose for this answer, added as it starts.

    A header of the same name that the view set itself is replaced, as
    Talisman's own would be.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            chosen: _Chosen | None = environ.pop(ENVIRON_KEY, None)
            if chosen is not None:
                ours, names = chosen
                if not names.isdisjoint(name.lower() for name, _ in headers):
                    headers = [header for header in headers if header[0].lower() not in names]
                headers = headers + ours
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
