"""Security headers worked out once per view, not once per response.

Flask-Talisman rebuilds every header (its per-view options, the policy
strings) for each response. The values depend only on the view and on
whether the request came over HTTPS, so this subclass works them out the
first time and then copies them. Same headers, same per-view overrides
(``@talisman(...)``); a policy with a per-request nonce is never kept.
"""

from __future__ import annotations

from typing import Any

import flask
from flask_talisman import Talisman as _Talisman
from werkzeug.datastructures import Headers


class Talisman(_Talisman):  # type: ignore[misc]
    def init_app(self, app: flask.Flask, **kwargs: Any) -> None:
        self._options_by_view: dict[str | None, dict[str, Any]] = {}
        self._headers_by_view: dict[tuple[str | None, bool], list[tuple[str, str]]] = {}
        super().init_app(app, **kwargs)

    def _get_local_options(self) -> dict[str, Any]:
        endpoint = flask.request.endpoint
        options = self._options_by_view.get(endpoint)
        if options is None:
            options = super()._get_local_options()
            self._options_by_view[endpoint] = options
        return options

    def _set_response_headers(self, response: flask.Response) -> flask.Response:
        request = flask.request
        secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
        key = (request.endpoint, secure)
        headers = self._headers_by_view.get(key)
        if headers is None:
            built = Headers()
            super()._set_response_headers(_HeadersOnly(built))
            headers = list(built.items())
            if not self._get_local_options().get("content_security_policy_nonce_in"):
                self._headers_by_view[key] = headers
        present = response.headers
        if any(name in present for name, _ in headers):
            for name, value in headers:
                present[name] = value
        else:  # the usual case: one pass, no search-and-replace per header
            present.extend(headers)
        return response


class _HeadersOnly:
    """What Talisman's header setters touch of a response: its headers."""

    def __init__(self, headers: Headers) -> None:
        self.headers = headers
