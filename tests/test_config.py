"""donations.config.load_settings: every problem reported at once, unsafe setups refused."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

from donations.config import PROJECT_ROOT, ConfigError, Settings, load_settings

GOOD: dict[str, str] = {
    "SECRET_KEY": "cfg-Qm3vX9c4RtZ8pWy7NbK3sHf6DgA1eU0oIrTq5",
    "DATABASE_URL": "sqlite:///instance/test.db",
    "STRIPE_SECRET_KEY": "sk_test_abc",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
}
LIVE: dict[str, str] = {
    **GOOD,
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_abc",
    "BASE_URL": "https://donate.example.org",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "NEWSROOM_NAME": "The Gazette",
}
REQUIRED = (
    "SECRET_KEY",
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
)


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).count("\n  - ") == len(caught.value.problems)
    return caught.value.problems


def test_a_good_environment_loads() -> None:
    settings = load_settings(GOOD)
    assert settings.stripe_api_base is None
    assert settings.trusted_proxies == 0
    assert settings.base_url == "http://127.0.0.1:5000"


def test_a_live_environment_loads() -> None:
    settings = load_settings(LIVE)
    assert settings.stripe_api_base is None
    assert settings.secure_cookies


def test_load_settings_reads_only_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", "http://10.1.2.3:8420")
    assert load_settings(GOOD).stripe_api_base is None


def test_every_missing_variable_is_listed_at_once() -> None:
    found = problems({})
    for name in REQUIRED:
        assert sum(p.startswith(f"{name} ") for p in found) == 1, (name, found)
    assert len(found) == len(REQUIRED)


def test_blank_values_count_as_missing_and_other_problems_come_too() -> None:
    env = {**GOOD, "SECRET_KEY": "   ", "STRIPE_WEBHOOK_SECRET": "", "TRUSTED_PROXIES": "x"}
    del env["DATABASE_URL"]
    found = problems(env)
    for name in ("SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "DATABASE_URL", "TRUSTED_PROXIES"):
        assert any(p.startswith(f"{name} ") for p in found), (name, found)
    assert len(found) == 4


def test_live_key_with_simulator_base_is_refused() -> None:
    found = problems({**LIVE, "STRIPE_API_BASE": "http://127.0.0.1:8420"})
    assert len(found) == 1
    assert "live Stripe key" in found[0]
    assert "STRIPE_API_BASE" in found[0]


def test_restricted_live_key_with_simulator_base_is_refused() -> None:
    found = problems(
        {**LIVE, "STRIPE_SECRET_KEY": "rk_live_abc", "STRIPE_API_BASE": "http://127.0.0.1:8420"}
    )
    assert any("STRIPE_API_BASE" in p for p in found)


@pytest.mark.parametrize(
    ("secret", "publishable"),
    [
        ("sk_live_abc", "pk_test_abc"),
        ("sk_test_abc", "pk_live_abc"),
        ("rk_live_abc", "pk_test_abc"),
    ],
)
def test_mixed_live_and_test_keys_are_refused(secret: str, publishable: str) -> None:
    found = problems({**LIVE, "STRIPE_SECRET_KEY": secret, "STRIPE_PUBLISHABLE_KEY": publishable})
    assert any("mix live and test" in p for p in found), found


@pytest.mark.parametrize(
    "base",
    [
        "http://10.0.0.5:8420",
        "http://example.com",
        "https://api.stripe.com",
        "http://127.0.0.1.evil.example:8420",
        "http://0.0.0.0:8420",
        "not a url",
    ],
)
def test_non_loopback_api_base_is_refused(base: str) -> None:
    found = problems({**GOOD, "STRIPE_API_BASE": base})
    assert found == ["STRIPE_API_BASE is only for the local simulator on loopback."]


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:8420", "http://localhost:8420", "http://[::1]:8420"]
)
def test_loopback_api_base_is_accepted(base: str) -> None:
    settings = load_settings({**GOOD, "STRIPE_API_BASE": base})
    assert settings.stripe_api_base == base
    assert settings.simulated_payments


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:p@db:5432/donations", "postgresql+psycopg://u:p@db:5432/donations"),
        ("postgresql://u:p@db/donations", "postgresql+psycopg://u:p@db/donations"),
        ("postgresql+psycopg://u@db/donations", "postgresql+psycopg://u@db/donations"),
        ("sqlite:///instance/x.db", f"sqlite:///{PROJECT_ROOT}/instance/x.db"),
    ],
)
def test_database_url_gets_the_psycopg_driver(given: str, used: str) -> None:
    settings = load_settings({**GOOD, "DATABASE_URL": given})
    assert settings.database_url == used
    assert settings.as_flask_config()["SQLALCHEMY_DATABASE_URI"] == used


@pytest.mark.parametrize("url", ["mysql://u@db/x", "postgresql+psycopg2://u@db/x", "db.sqlite"])
def test_other_database_urls_are_refused(url: str) -> None:
    found = problems({**GOOD, "DATABASE_URL": url})
    assert any("DATABASE_URL" in p for p in found)


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "10.0.0.1", "2 proxies", "１", "²"])
def test_bad_trusted_proxies_are_refused(value: str) -> None:
    found = problems({**GOOD, "TRUSTED_PROXIES": value})
    assert found == ["TRUSTED_PROXIES must be the number of proxies in front of the app."]


@pytest.mark.parametrize(("value", "count"), [("", 0), ("0", 0), ("1", 1), (" 2 ", 2)])
def test_trusted_proxies_count(value: str, count: int) -> None:
    assert load_settings({**GOOD, "TRUSTED_PROXIES": value}).trusted_proxies == count


def test_live_keys_need_redis() -> None:
    env = {k: v for k, v in LIVE.items() if k != "REDIS_URL"}
    assert "REDIS_URL must be set when live Stripe keys are used." in problems(env)
    assert load_settings(LIVE).redis_url == LIVE["REDIS_URL"]


@pytest.mark.parametrize(
    "key",
    ["x" * 40, "k" * 64, "test-secret-key-" + "k" * 32, "abababababababababababababababab" * 2,
     "short"],
)  # fmt: skip
def test_a_guessable_secret_key_is_refused(key: str) -> None:
    assert any(p.startswith("SECRET_KEY must be") for p in problems({**GOOD, "SECRET_KEY": key}))


def test_random_keys_are_accepted_and_fallbacks_checked() -> None:
    import secrets

    for key in (secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_hex(16)):
        assert load_settings({**GOOD, "SECRET_KEY": key}).secret_key == key
    old = secrets.token_urlsafe(48)
    settings = load_settings({**GOOD, "SECRET_KEY_FALLBACKS": f" {old} "})
    assert settings.as_flask_config()["SECRET_KEY_FALLBACKS"] == [old]
    assert problems({**GOOD, "SECRET_KEY_FALLBACKS": "x" * 40}) == [
        "Each of SECRET_KEY_FALLBACKS must be at least 32 characters of random data."
    ]


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///instance/donations.db", f"sqlite:///{PROJECT_ROOT}/instance/donations.db"),
        ("sqlite:///db.sqlite?timeout=5", f"sqlite:///{PROJECT_ROOT}/db.sqlite?timeout=5"),
        ("sqlite:////var/lib/d.db", "sqlite:////var/lib/d.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_relative_sqlite_paths_are_read_from_the_project_root(given: str, used: str) -> None:
    # As the README writes them, whatever the current directory; never instance/instance/.
    assert load_settings({**GOOD, "DATABASE_URL": given}).database_url == used


def test_relative_instance_and_mail_paths_are_read_from_the_project_root() -> None:
    settings = load_settings({**GOOD, "INSTANCE_PATH": "var", "MAIL_DIR": "outbox"})
    assert settings.instance_path == PROJECT_ROOT / "var"
    assert settings.mail_dir == PROJECT_ROOT / "outbox"
    assert load_settings(GOOD).mail_dir == PROJECT_ROOT / "instance" / "mail"


def test_the_newsroom_defaults_to_the_built_in_pages_and_the_mail_sender() -> None:
    newsroom = load_settings(
        {**GOOD, "MAIL_FROM": "The Gazette <readers@gazette.example>"}
    ).newsroom
    assert (newsroom.privacy_policy_url, newsroom.imprint_url, newsroom.name) == (None, None, None)
    assert newsroom.contact_email == "readers@gazette.example"
    assert load_settings(GOOD).newsroom.contact_email == "donations@localhost"


def test_the_newsroom_and_its_own_pages_are_read() -> None:
    newsroom = load_settings(
        {
            **GOOD,
            "NEWSROOM_NAME": "  The   Gazette\n",
            "NEWSROOM_ADDRESS": "1 Press Street,\n  Valleytown",
            "NEWSROOM_CONTACT_EMAIL": "readers@gazette.example",
            "PRIVACY_POLICY_URL": "https://gazette.example/privacy",
            "IMPRINT_URL": "http://gazette.example/imprint?lang=en",
        }
    ).newsroom
    assert newsroom.name == "The Gazette"
    assert newsroom.address == "1 Press Street, Valleytown"
    assert newsroom.contact_email == "readers@gazette.example"
    assert newsroom.privacy_policy_url == "https://gazette.example/privacy"
    assert newsroom.imprint_url == "http://gazette.example/imprint?lang=en"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRIVACY_POLICY_URL", "/privacy", "PRIVACY_POLICY_URL must be an absolute http(s) URL"),
        ("PRIVACY_POLICY_URL", "javascript:alert(1)", "PRIVACY_POLICY_URL must be an absolute"),
        ("IMPRINT_URL", "https://gazette.example/a page", "IMPRINT_URL must be an absolute"),
        ("IMPRINT_URL", "https://[gazette", "IMPRINT_URL must be an absolute"),
        ("IMPRINT_URL", "https://gazette.example/" + "x" * 500, "IMPRINT_URL must be an absolute"),
        ("NEWSROOM_NAME", "The\x00Gazette", "NEWSROOM_NAME must be at most 500 printable"),
        ("NEWSROOM_ADDRESS", "x" * 501, "NEWSROOM_ADDRESS must be at most 500 printable"),
        ("NEWSROOM_CONTACT_EMAIL", "Gazette <a@b.example>", "NEWSROOM_CONTACT_EMAIL must be one"),
        ("NEWSROOM_CONTACT_EMAIL", "a@b.example\r\nBcc: c@d", "NEWSROOM_CONTACT_EMAIL must be one"),
        ("NEWSROOM_CONTACT_EMAIL", "nobody", "NEWSROOM_CONTACT_EMAIL must be one"),
    ],
)
def test_bad_newsroom_settings_are_refused(name: str, value: str, message: str) -> None:
    found = problems({**GOOD, name: value})
    assert len(found) == 1, found
    assert found[0].startswith(message), found


def test_live_keys_need_a_newsroom_name_for_the_built_in_pages() -> None:
    env = {key: value for key, value in LIVE.items() if key != "NEWSROOM_NAME"}
    (found,) = problems(env)
    assert found.startswith("NEWSROOM_NAME must be set when live Stripe keys are used")
    assert "PRIVACY_POLICY_URL and IMPRINT_URL" in found
    (found,) = problems({**env, "PRIVACY_POLICY_URL": "https://gazette.example/privacy"})
    assert "set IMPRINT_URL to" in found
    own = {"PRIVACY_POLICY_URL": "https://g.example/p", "IMPRINT_URL": "https://g.example/i"}
    assert load_settings({**env, **own}).newsroom.name is None
    (found,) = problems({**env, **own, "IMPRINT_URL": "http://g.example/i"})
    assert found == "IMPRINT_URL must be https:// when live Stripe keys are used."


def test_unset_variables_take_the_defaults_declared_on_settings() -> None:
    loaded = load_settings(GOOD)
    declared = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}
    assert {name: getattr(loaded, name) for name in declared} == declared
    assert loaded.mail_dir == loaded.instance_path / "mail"


@pytest.mark.parametrize(
    "name",
    [
        "CHECKOUT_RATE_LIMIT",
        "REMINDER_RATE_LIMIT",
        "STAFF_LOGIN_RATE_LIMIT",
        "EMBED_EVENTS_RATE_LIMIT",
        "MANAGE_SIGN_IN_RATE_LIMIT",
        "MANAGE_SIGN_IN_IP_RATE_LIMIT",
        "MANAGE_CHANGE_RATE_LIMIT",
    ],
)
def test_rate_limits_are_read_and_checked(name: str) -> None:
    given = load_settings({**GOOD, name: " 3 per minute; 20 per hour "})
    assert getattr(given, name.lower()) == "3 per minute; 20 per hour"
    for bad in ("ten per minute", "10 per fortnight", "0 per minute", "10 per minute;"):
        assert problems({**GOOD, name: bad}) == [
            f"{name} must be rate limits like 10 per minute;40 per hour (each at least 1)."
        ]


@pytest.mark.parametrize(("value", "attempts"), [("", 10), ("1", 1), (" 25 ", 25), ("100", 100)])
def test_webhook_max_attempts_is_read(value: str, attempts: int) -> None:
    assert load_settings({**GOOD, "WEBHOOK_MAX_ATTEMPTS": value}).webhook_max_attempts == attempts


@pytest.mark.parametrize("value", ["0", "101", "-1", "ten", "2.5"])
def test_bad_webhook_max_attempts_are_refused(value: str) -> None:
    assert problems({**GOOD, "WEBHOOK_MAX_ATTEMPTS": value}) == [
        "WEBHOOK_MAX_ATTEMPTS must be a number of attempts between 1 and 100."
    ]


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", None),
        ("none", None),
        ("annual", ("annual", 12)),
        ("Annual:10", ("annual", 10)),
        ("raise:25", ("raise", 25)),
    ],
)
def test_receipt_upgrade_offer(raw: str, rule: tuple[str, int] | None) -> None:
    assert load_settings({**GOOD, "RECEIPT_UPGRADE_OFFER": raw}).receipt_upgrade_offer == rule


@pytest.mark.parametrize("raw", ["annual:5", "annual:13", "raise", "raise:0", "raise:101", "x:1"])
def test_a_bad_receipt_upgrade_offer_is_refused(raw: str) -> None:
    (problem,) = problems({**GOOD, "RECEIPT_UPGRADE_OFFER": raw})
    assert problem.startswith("RECEIPT_UPGRADE_OFFER must be none, annual")
