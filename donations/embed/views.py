"""``/embed.js`` (a contract, like ``/support``), its stylesheet and its configuration.

Every response here is the same for every reader and cacheable by a CDN; none
reads or sets the session.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue

from donations.cacheable import etag_for, public_response
from donations.db import commit
from donations.embed.models import EmbedEvent
from donations.embed.services import count_event, embed_config_body, embed_language
from donations.extensions import csrf, limiter
from donations.supporters.attribution import Attribution

bp = Blueprint("embed", __name__)

ASSETS = Path(__file__).resolve().parent.parent.parent / "static" / "embed"
# The script and stylesheet change only with a deploy; the configuration with the settings.
ASSET_MAX_AGE = 3600
CONFIG_MAX_AGE = 300


@lru_cache(maxsize=4)
def asset(name: str) -> tuple[bytes, str]:
    body = (ASSETS / name).read_bytes()
    return body, etag_for(body)


@bp.get("/embed.js")
def script() -> ResponseReturnValue:
    body, etag = asset("embed.js")
    return public_response(
        body, "text/javascript", max_age=ASSET_MAX_AGE, any_origin=True, etag=etag
    )


@bp.get("/embed.css")
def stylesheet() -> ResponseReturnValue:
    body, etag = asset("embed.css")
    return public_response(body, "text/css", max_age=ASSET_MAX_AGE, any_origin=True, etag=etag)


@bp.get("/embed/config.json")
def config() -> Response:
    lang = embed_language(request.args.get("lang"))
    body, etag = embed_config_body(lang)
    return public_response(
        body, "application/json", max_age=CONFIG_MAX_AGE, any_origin=True, etag=etag
    )


EVENT_BODY_MAX = 2048


def _events_limit() -> str:
    return str(current_app.config["SETTINGS"].embed_events_rate_limit)


def _no_content() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


# Exempt from CSRF: sent by navigator.sendBeacon from article pages on other
# origins, with no cookies; it can only add one to an anonymous daily counter.
@bp.post("/embed/events")
@csrf.exempt
@limiter.limit(_events_limit)
def events() -> ResponseReturnValue:
    """One event from the embed: ``{"event": "impression", "article": ..., ...}`` as text/plain."""
    if (request.content_length or 0) > EVENT_BODY_MAX:
        return "too large\n", 413
    try:
        data = json.loads(request.get_data(cache=False, as_text=True)[:EVENT_BODY_MAX])
        event = EmbedEvent(data["event"])
    except (ValueError, KeyError, TypeError):
        return "bad event\n", 400
    if not isinstance(data, dict):
        return "bad event\n", 400
    count_event(event, Attribution.from_args(data))
    commit()
    return _no_content()
