"""/embed.js, its stylesheet and configuration: cacheable by a CDN, no cookies, small."""

from __future__ import annotations

import gzip

import pytest
from flask.testing import FlaskClient

from donations.embed.views import ASSETS

# Our own JavaScript and CSS together, gzipped, as a reader's browser fetches them.
SIZE_BUDGET = 15 * 1024


def cacheable(response, max_age: int) -> None:
    assert response.status_code == 200
    assert response.cache_control.public
    assert response.cache_control.max_age == max_age
    assert response.headers["ETag"]
    assert "Set-Cookie" not in response.headers
    assert "cookie" not in response.headers.get("Vary", "").lower()
    assert not response.cache_control.private
    assert not response.cache_control.no_store


@pytest.mark.parametrize(
    ("path", "mimetype"), [("/embed.js", "text/javascript"), ("/embed.css", "text/css")]
)
def test_assets_are_public_and_cacheable(client: FlaskClient, path: str, mimetype: str) -> None:
    response = client.get(path)
    cacheable(response, 3600)
    assert response.mimetype == mimetype
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_config_is_the_same_for_everyone_and_revalidates(client: FlaskClient) -> None:
    first = client.get("/embed/config.json?lang=en", headers={"Cookie": "session=whatever"})
    cacheable(first, 300)
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    # Another reader, another browser language, another address: the same bytes.
    second = client.get(
        "/embed/config.json?lang=en",
        headers={"Accept-Language": "de-DE", "X-Forwarded-For": "203.0.113.9"},
    )
    assert second.data == first.data
    assert second.headers["ETag"] == first.headers["ETag"]
    again = client.get(
        "/embed/config.json?lang=en", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.cache_control.public


def test_config_in_the_pages_language(client: FlaskClient) -> None:
    english = client.get("/embed/config.json?lang=en").get_json()
    russian = client.get("/embed/config.json?lang=ru-RU").get_json()
    assert russian["lang"] == "ru"
    labels = ("once", "monthly", "annual", "continue", "remind", "not_ready")
    assert [english["text"][k] for k in labels] == [
        "Once",
        "Monthly",
        "Annual",
        "Continue",
        "Remind me later",
        "Not ready to support today?",
    ]
    assert [russian["text"][k] for k in labels] == [
        "Разово",
        "Ежемесячно",
        "Ежегодно",
        "Продолжить",
        "Напомнить позже",
        "Не готовы поддержать нас сегодня?",
    ]
    # Amounts as the reader reads them, values as the checkout takes them.
    assert english["amounts"]["USD"]["monthly"]["presets"][0] == ["5.00", "$5.00"]
    assert russian["amounts"]["EUR"]["monthly"]["presets"][0][0] == "5.00"
    assert russian["amounts"]["EUR"]["monthly"]["presets"][0][1].replace("\xa0", " ") == "5,00 €"
    assert {m["id"]: m["currencies"] for m in english["methods"]} == {
        "card": ["*"],
        "sepa_debit": ["EUR"],
    }
    assert english["currency_by_region"]["DE"] == "EUR"
    assert english["urls"]["checkout"].endswith("/support/checkout")


@pytest.mark.parametrize("lang", ["", "xx", "ru" * 500, "../../etc", "%ff", "zh-Hant-TW", "😀"])
def test_config_with_junk_language_is_english(client: FlaskClient, lang: str) -> None:
    response = client.get("/embed/config.json", query_string={"lang": lang})
    assert response.status_code == 200
    assert response.get_json()["lang"] == "en"


def test_config_with_a_nul_byte_is_refused_at_the_edge(client: FlaskClient) -> None:
    assert client.get("/embed/config.json", query_string={"lang": "\x00"}).status_code == 400


def test_own_javascript_and_css_stay_under_15_kb_gzipped() -> None:
    sizes = {
        name: len(gzip.compress((ASSETS / name).read_bytes(), compresslevel=9))
        for name in ("embed.js", "embed.css")
    }
    assert sum(sizes.values()) <= SIZE_BUDGET, sizes


def test_assets_take_no_third_party_resources() -> None:
    """Nothing in the script or stylesheet names another origin (fonts, images, trackers)."""
    for name in ("embed.js", "embed.css"):
        text = (ASSETS / name).read_text()
        for marker in ("http://", "https://", "//cdn", "@import", "url("):
            assert marker not in text.replace("https://DONATIONS", ""), (name, marker)
