"""The embed's counters: anonymous daily totals, and the supporter mark."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from donations.db import db
from donations.embed.models import EmbedCount, EmbedEvent
from donations.support.supporter_mark import (
    article_return_url,
    supporter_mark,
    supporter_mark_valid,
)


def counts() -> dict[tuple[str, str, str, str], int]:
    return {
        (str(c.event), c.article, c.campaign, c.variant): c.count
        for c in db.session.scalars(select(EmbedCount))
    }


def send(client, body: object, **headers: str):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(
        "/embed/events", data=data, headers={"Content-Type": "text/plain", **headers}
    )


def test_events_add_to_anonymous_daily_counters(client, ctx) -> None:
    shown = {"event": "impression", "article": "budget-vote", "campaign": "winter", "variant": "b"}
    for _ in range(3):
        response = send(client, shown, Cookie="session=abc")
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Set-Cookie" not in response.headers
    assert send(client, {"event": "continue", "article": "budget-vote"}).status_code == 204
    assert counts() == {
        ("impression", "budget-vote", "winter", "b"): 3,
        ("continue", "budget-vote", "", ""): 1,
    }
    # Nothing about the reader is stored: only these columns exist.
    assert set(EmbedCount.__table__.columns.keys()) == {
        "id",
        "day",
        "event",
        "article",
        "campaign",
        "variant",
        "count",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"impression"',
        b"{}",
        b'{"event": "purchase"}',
        b'{"event": null}',
        b'{"event": ["impression"]}',
        b"\x00\xff\xfe",
        json.dumps({"event": "impression\x00"}).encode(),
    ],
)
def test_junk_events_are_refused_and_count_nothing(client, ctx, body: bytes) -> None:
    assert send(client, body).status_code == 400
    assert counts() == {}


def test_junk_placement_counts_without_it(client, ctx) -> None:
    body = {"event": "impression", "article": "a\x00b", "campaign": "c" * 101, "variant": {"x": 1}}
    assert send(client, body).status_code == 204
    assert counts() == {("impression", "", "", ""): 1}


def test_a_huge_event_is_refused(client, ctx) -> None:
    assert send(client, {"event": "impression", "article": "x" * 5000}).status_code == 413
    assert counts() == {}


def test_only_post(client) -> None:
    assert client.get("/embed/events").status_code == 405


def test_supporter_mark_is_signed_and_expires(ctx) -> None:
    mark = supporter_mark()
    until, signature = mark.split(".")
    assert int(until) > time.time() + 364 * 86_400
    assert supporter_mark_valid(mark)
    assert not supporter_mark_valid(f"{int(until) + 1}.{signature}")
    assert not supporter_mark_valid(f"{until}.{'0' * 32}")
    assert not supporter_mark_valid(mark, now=int(until) + 1)
    for junk in ("", ".", "x.y", "9" * 100, "\x00"):
        assert not supporter_mark_valid(junk)


def test_back_to_the_article_carries_the_mark_in_the_fragment(ctx) -> None:
    url = article_return_url("https://news.example/budget?page=2#comments")
    assert url is not None
    base, mark = url.split("#dn-supporter=")
    assert base == "https://news.example/budget?page=2"
    assert supporter_mark_valid(mark)
    assert article_return_url("javascript:alert(1)") is None
    assert article_return_url(None) is None
    assert EmbedEvent("impression") is EmbedEvent.IMPRESSION
