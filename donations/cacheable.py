"""Responses a shared cache (a CDN) may keep: the same bytes for every reader.

One place decides what makes a public response safe to cache: ``Cache-Control:
public`` with a lifetime, a strong ETag over the body (so a revalidation costs a
304 and no body), no cookie, and nothing that varies per reader. Views that use
it must not touch the session (reading it alone adds ``Vary: Cookie``).
"""

from __future__ import annotations

import hashlib

from flask import Response, request

# Browsers and CDNs keep it this long, then revalidate with If-None-Match; a
# stale copy may be served while that happens.
DEFAULT_MAX_AGE = 300
STALE_WHILE_REVALIDATE = 600


def etag_for(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def public_response(
    body: bytes,
    mimetype: str,
    *,
    max_age: int = DEFAULT_MAX_AGE,
    any_origin: bool = False,
    etag: str | None = None,
) -> Response:
    """``body`` as a cacheable response, or a bodiless 304 when the ETag matches.

    ``any_origin`` adds ``Access-Control-Allow-Origin: *`` (without credentials)
    for what pages on other origins fetch: safe only because the body is the
    same for everyone and carries nothing about the reader. ``etag`` may be
    given when the caller keeps it with the body (``etag_for(body)``).
    """
    response = Response(body, mimetype=mimetype)
    response.set_etag(etag or etag_for(body))
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.cache_control.stale_while_revalidate = STALE_WHILE_REVALIDATE
    if any_origin:
        response.headers["Access-Control-Allow-Origin"] = "*"
        # Let pages on other origins read the ETag for their own revalidation.
        response.headers["Access-Control-Expose-Headers"] = "ETag"
        # Loaded by <script>/<link> from other origins; nothing here is private.
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.make_conditional(request)  # 304 without the body when the ETag matches
    return response
