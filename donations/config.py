"""Configuration from the environment (12-factor), validated at start-up.

Every problem is collected and reported at once, so an operator fixes the
environment in one go instead of one restart per missing variable.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import date
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from limits import parse_many


class ConfigError(RuntimeError):
    """The environment cannot run the app; ``problems`` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Configuration is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


# The checkout: the folder holding wsgi.py, migrations/ and templates/. Relative
# paths in the settings (``sqlite:///instance/donations.db``, MAIL_DIR,
# INSTANCE_PATH) are read from here, as a reader of the README expects, whatever
# the current directory (Flask-SQLAlchemy alone would put a relative SQLite file
# under the instance folder: instance/instance/donations.db).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(value: str | Path) -> Path:
    """``value`` as an absolute path, a relative one taken from the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _absolute_sqlite_url(url: str) -> str:
    """``sqlite:///relative.db`` → ``sqlite:////abs/project/relative.db``; others unchanged."""
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith(("/", ":memory:")):
        return url
    path, sep, query = rest.partition("?")
    if path.startswith("file:"):  # a URI filename (?uri=true): leave it to SQLite
        return url
    return f"{prefix}:///{project_path(path)}{sep}{query}"


@dataclass(frozen=True)
class Newsroom:
    """Who runs the ask, as the built-in privacy and imprint pages name them, and
    where the newsroom's own pages are (None: the built-in /privacy and /imprint)."""

    name: str | None = None
    contact_email: str = "donations@localhost"
    address: str | None = None
    privacy_policy_url: str | None = None
    imprint_url: str | None = None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the app runs with, read by :func:`load_settings`.

    The defaults here are the one place a default is declared: an unset
    variable takes them, and no module repeats them.
    """

    secret_key: str
    database_url: str
    stripe_secret_key: str
    stripe_publishable_key: str
    stripe_webhook_secret: str
    stripe_api_base: str | None = None
    base_url: str = "http://127.0.0.1:5000"
    redis_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = "Donations <donations@localhost>"
    # Unset in the environment: instance_path / "mail".
    mail_dir: Path
    instance_path: Path = PROJECT_ROOT / "instance"
    reporting_time_zone: str = "UTC"
    trusted_proxies: int = 0
    checkout_rate_limit: str = "10 per minute;40 per hour"
    reminder_rate_limit: str = "5 per minute;30 per hour"
    # Per address, on the staff login pages.
    staff_login_rate_limit: str = "10 per minute;60 per hour"
    # Per address, on POST /embed/events (the embed's counters).
    embed_events_rate_limit: str = "120 per minute"
    # Sign-in links (/manage) asked for one address typed, whoever asks ...
    manage_sign_in_rate_limit: str = "3 per 10 minutes;10 per day"
    # ... and from one client address, whatever address is typed.
    manage_sign_in_ip_rate_limit: str = "10 per hour;30 per day"
    # Plan changes in /manage (each creates or changes Stripe objects), per
    # signed-in supporter and per client address.
    manage_change_rate_limit: str = "10 per hour;30 per day"
    # The failed attempt that parks a stored Stripe event.
    webhook_max_attempts: int = 10
    # Seconds before an SMTP server that does not answer counts as a temporary failure.
    smtp_timeout: float = 15.0
    # How often beat (or the embedded scheduler) sends due reminders and mail retries.
    dispatch_interval: float = 60.0
    secret_key_fallbacks: tuple[str, ...] = ()
    # How long a thank-you page shows what was given, from the gift's creation.
    thanks_page_days: int = 30
    # "json" (one object a line, with the request id) or "text".
    log_format: str = "json"
    # Bearer token for /metrics; without one only loopback scrapers are answered.
    metrics_token: str | None = None
    # After how long an unpaid checkout is expired and its Stripe intent cancelled.
    checkout_expiry_hours: int = 24
    newsroom: Newsroom = field(default_factory=Newsroom)
    # Where reports prepared in the background are written (shared by web and
    # workers; unset in the environment: instance_path / "exports"), and after
    # how long they are deleted.
    export_dir: Path
    export_retention_hours: int = 24
    # How many days before an annual plan renews its supporter is told (and,
    # for any plan, told that the card expires before the next payment).
    renewal_notice_days: int = 14
    # The first day of a fiscal year, "MM-DD" ("04-01": fiscal year 2026 runs
    # from 1 April 2026 to 31 March 2027), for the annual giving statements,
    # and the tax wording those statements carry (the newsroom's own).
    fiscal_year_start: str = "01-01"
    statement_tax_text: str | None = None

    @property
    def fiscal_year_start_day(self) -> tuple[int, int]:
        """FISCAL_YEAR_START as (month, day)."""
        month, day = self.fiscal_year_start.split("-")
        return int(month), int(day)

    # Cancelling in /manage: the reasons offered, as (key, label) -- an empty
    # label is a built-in reason, worded in each language (CANCEL_REASON_KEYS) --
    # and the offers made instead, each once per attempt (CANCEL_OFFER_CHOICES).
    cancel_reasons: tuple[tuple[str, str], ...] = tuple(
        (key, "") for key in ("too_expensive", "not_reading", "other_causes", "temporary", "other")
    )
    cancel_offers: tuple[str, ...] = ("pause", "lower_amount", "annual", "reminder")
    # RECEIPT_UPGRADE_OFFER: what a monthly plan's receipt proposes through an
    # upgrade link -- ("annual", N): annual at N months' gifts; ("raise", P): P %
    # more each month, rounded up to a whole unit -- or None: nothing.
    receipt_upgrade_offer: tuple[str, int] | None = None

    @property
    def simulated_payments(self) -> bool:
        """True when payments go to the local Stripe simulator."""
        return self.stripe_api_base is not None

    @property
    def stripe_js_url(self) -> str:
        if self.stripe_api_base:
            return self.stripe_api_base.rstrip("/") + "/js.stripe.com/v3/"
        return "https://js.stripe.com/v3/"

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def background_inline(self) -> bool:
        """Run tasks in the request (embedded default) rather than on Celery."""
        return self.redis_url is None

    def as_flask_config(self) -> dict[str, object]:
        return {
            "SECRET_KEY": self.secret_key,
            "SECRET_KEY_FALLBACKS": list(self.secret_key_fallbacks),
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(self.database_url),
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "PREFERRED_URL_SCHEME": urlsplit(self.base_url).scheme,
            "WTF_CSRF_TIME_LIMIT": 4 * 3600,
            "MAX_CONTENT_LENGTH": 256 * 1024,
            "RATELIMIT_STORAGE_URI": self.redis_url or "memory://",
            "RATELIMIT_HEADERS_ENABLED": True,
            "BABEL_DEFAULT_LOCALE": "en",
            "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).parent.parent / "translations"),
        }


# Bits a SECRET_KEY must carry by the estimate below: token_urlsafe(48) scores ~330,
# a 32-character hex token ~115; "x" * 40 scores 0 and a sentence about 150 at best.
MIN_KEY_BITS = 96


def key_entropy_bits(key: str) -> float:
    """A rough upper bound on a key's randomness: its length times the Shannon
    entropy of its characters. ``"x" * 40`` scores 0, a hex token 4 bits a character."""
    counts = Counter(key)
    per_char = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    return per_char * len(key)


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Several gunicorn threads and the webhook may write at once: wait for
        # the lock instead of failing with "database is locked".
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


LIVE_PREFIXES = ("sk_live_", "rk_live_")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigError listing every problem.

    A variable left unset (or blank) takes the default declared on
    :class:`Settings`, the one place defaults are written down.
    """
    read = _Environment(os.environ if env is None else env)
    secret_key, fallbacks = _secret_keys(read)
    database_url = _database_url(read)
    stripe = _stripe_keys(read)
    base_url = _base_url(read, stripe.live)
    redis_url = _redis_url(read, stripe.live)
    smtp_url, mail_from = _mail(read)
    instance = project_path(read.text("INSTANCE_PATH") or _DEFAULTS["instance_path"])
    settings = Settings(
        secret_key=secret_key,
        database_url=database_url,
        stripe_secret_key=stripe.secret,
        stripe_publishable_key=stripe.publishable,
        stripe_webhook_secret=stripe.webhook_secret,
        stripe_api_base=stripe.api_base,
        base_url=base_url,
        redis_url=redis_url,
        smtp_url=smtp_url,
        mail_from=mail_from,
        mail_dir=project_path(read.text("MAIL_DIR") or instance / "mail"),
        instance_path=instance,
        trusted_proxies=read.whole_number("trusted_proxies", problem=_PROXIES_PROBLEM),
        reporting_time_zone=_time_zone(read),
        smtp_timeout=read.seconds("smtp_timeout", "SMTP_TIMEOUT"),
        dispatch_interval=read.seconds("dispatch_interval", "DISPATCH_INTERVAL_SECONDS"),
        thanks_page_days=read.whole_number("thanks_page_days", "days", 1, 3650),
        log_format=_log_format(read),
        metrics_token=_metrics_token(read),
        checkout_expiry_hours=read.whole_number("checkout_expiry_hours", "hours", 1, 720),
        webhook_max_attempts=read.whole_number("webhook_max_attempts", "attempts", 1, 100),
        checkout_rate_limit=read.rate_limit("checkout_rate_limit"),
        reminder_rate_limit=read.rate_limit("reminder_rate_limit"),
        staff_login_rate_limit=read.rate_limit("staff_login_rate_limit"),
        embed_events_rate_limit=read.rate_limit("embed_events_rate_limit"),
        manage_sign_in_rate_limit=read.rate_limit("manage_sign_in_rate_limit"),
        manage_sign_in_ip_rate_limit=read.rate_limit("manage_sign_in_ip_rate_limit"),
        manage_change_rate_limit=read.rate_limit("manage_change_rate_limit"),
        export_dir=project_path(read.text("EXPORT_DIR") or instance / "exports"),
        export_retention_hours=read.whole_number("export_retention_hours", "hours", 1, 720),
        renewal_notice_days=read.whole_number("renewal_notice_days", "days", 7, 30),
        fiscal_year_start=_fiscal_year_start(read),
        statement_tax_text=_statement_tax_text(read),
        cancel_reasons=_cancel_reasons(read),
        cancel_offers=_cancel_offers(read),
        receipt_upgrade_offer=_receipt_upgrade_offer(read),
        secret_key_fallbacks=fallbacks,
        newsroom=_newsroom(read.env, mail_from, stripe.live, read.problems),
    )
    if read.problems:
        raise ConfigError(read.problems)
    return settings


_PROXIES_PROBLEM = "TRUSTED_PROXIES must be the number of proxies in front of the app."

# What an unset variable means: the defaults declared on Settings, by field.
_DEFAULTS: dict[str, Any] = {
    item.name: item.default for item in fields(Settings) if item.default is not MISSING
}


class _Environment:
    """The variables being read, and every problem found in them so far."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            self.problems.append(f"{name} is not set.")
        return value

    def whole_number(
        self, field: str, unit: str = "", low: int = 0, high: int | None = None, problem: str = ""
    ) -> int:
        """The variable named like ``field`` in capitals, a whole number in [low, high]."""
        name = field.upper()
        raw = self.text(name)
        default = int(_DEFAULTS[field])
        if not raw:
            return default
        number = int(raw) if raw.isascii() and raw.isdigit() else -1
        if low <= number and (high is None or number <= high):
            return number
        self.problems.append(
            problem or f"{name} must be a number of {unit} between {low} and {high}."
        )
        return default

    def seconds(self, field: str, name: str) -> float:
        raw = self.text(name)
        default = float(_DEFAULTS[field])
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3600:
            self.problems.append(f"{name} must be a number of seconds between 0 and 3600.")
            return default
        return value

    def rate_limit(self, field: str) -> str:
        """Flask-Limiter's notation, each limit at least one: ``10 per minute;40 per hour``."""
        name = field.upper()
        value = self.text(name) or str(_DEFAULTS[field])
        try:
            valid = all(item.amount >= 1 for item in parse_many(value))
        except ValueError:
            valid = False
        if not valid:
            self.problems.append(
                f"{name} must be rate limits like 10 per minute;40 per hour (each at least 1)."
            )
            return str(_DEFAULTS[field])
        return value


def _secret_keys(read: _Environment) -> tuple[str, tuple[str, ...]]:
    secret_key = read.required("SECRET_KEY")
    if secret_key and (len(secret_key) < 32 or key_entropy_bits(secret_key) < MIN_KEY_BITS):
        read.problems.append(
            "SECRET_KEY must be at least 32 characters of random data "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(48))").'
        )
    # Older keys, newest first, still accepted for cookies and signed links while
    # they age out: rotate by moving SECRET_KEY here and setting a new one.
    fallbacks = tuple(k.strip() for k in read.text("SECRET_KEY_FALLBACKS").split(",") if k.strip())
    if any(key_entropy_bits(k) < MIN_KEY_BITS or len(k) < 32 for k in fallbacks):
        read.problems.append(
            "Each of SECRET_KEY_FALLBACKS must be at least 32 characters of random data."
        )
    return secret_key, fallbacks


def _database_url(read: _Environment) -> str:
    database_url = read.required("DATABASE_URL")
    if not database_url:
        return database_url
    if database_url.startswith("postgres://") or database_url.startswith("postgresql://"):
        # SQLAlchemy 2 needs the driver spelled out; psycopg 3 is the one we ship.
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    if not database_url.startswith(("sqlite", "postgresql+psycopg://")):
        read.problems.append("DATABASE_URL must be a sqlite:/// or postgresql:// URL.")
    return _absolute_sqlite_url(database_url)


@dataclass(frozen=True)
class _StripeKeys:
    secret: str
    publishable: str
    webhook_secret: str
    api_base: str | None

    @property
    def live(self) -> bool:
        return self.secret.startswith(LIVE_PREFIXES)


def _stripe_keys(read: _Environment) -> _StripeKeys:
    keys = _StripeKeys(
        secret=read.required("STRIPE_SECRET_KEY"),
        publishable=read.required("STRIPE_PUBLISHABLE_KEY"),
        webhook_secret=read.required("STRIPE_WEBHOOK_SECRET"),
        api_base=read.text("STRIPE_API_BASE") or None,
    )
    problems = read.problems
    if keys.secret and not keys.secret.startswith(("sk_", "rk_")):
        problems.append("STRIPE_SECRET_KEY must start with sk_ or rk_.")
    if keys.publishable and not keys.publishable.startswith("pk_"):
        problems.append("STRIPE_PUBLISHABLE_KEY must start with pk_.")
    if keys.webhook_secret and not keys.webhook_secret.startswith("whsec_"):
        problems.append("STRIPE_WEBHOOK_SECRET must start with whsec_.")
    if keys.secret and keys.publishable and keys.live != keys.publishable.startswith("pk_live_"):
        problems.append("STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY mix live and test modes.")
    if keys.api_base:
        if keys.live:
            problems.append(
                "A live Stripe key cannot be used with STRIPE_API_BASE (the simulator); "
                "unset STRIPE_API_BASE to use Stripe."
            )
        if (urlsplit(keys.api_base).hostname or "") not in ("127.0.0.1", "localhost", "::1"):
            problems.append("STRIPE_API_BASE is only for the local simulator on loopback.")
    return keys


def _base_url(read: _Environment, live: bool) -> str:
    base_url = (read.text("BASE_URL") or _DEFAULTS["base_url"]).rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
        read.problems.append("BASE_URL must be an absolute http(s) URL.")
    elif live and not base_url.startswith("https://"):
        read.problems.append("BASE_URL must be https:// when live Stripe keys are used.")
    return str(base_url)


def _redis_url(read: _Environment, live: bool) -> str | None:
    redis_url = read.text("REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        read.problems.append("REDIS_URL must be a redis:// or rediss:// URL.")
    elif redis_url is None and live:
        # Rate limits and the declined-payment block live in each process's memory
        # without Redis: with several workers a card tester gets several budgets.
        read.problems.append("REDIS_URL must be set when live Stripe keys are used.")
    return redis_url


def _mail(read: _Environment) -> tuple[str | None, str]:
    """The SMTP server (None: mail is written to MAIL_DIR) and the From address."""
    smtp_url = read.text("SMTP_URL") or None
    if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtps", "smtp+starttls"):
        read.problems.append("SMTP_URL must be smtp://, smtp+starttls:// or smtps://.")
    mail_from = read.text("MAIL_FROM")
    if not mail_from:
        if smtp_url:
            read.problems.append("MAIL_FROM is not set (required with SMTP_URL).")
        mail_from = _DEFAULTS["mail_from"]
    if "\n" in mail_from or "\r" in mail_from:
        read.problems.append("MAIL_FROM must be a single line.")
    return smtp_url, str(mail_from)


def _time_zone(read: _Environment) -> str:
    zone = read.text("REPORTING_TIME_ZONE") or str(_DEFAULTS["reporting_time_zone"])
    try:
        ZoneInfo(zone)
    except Exception:
        read.problems.append(f"REPORTING_TIME_ZONE {zone!r} is not a known time zone.")
    return zone


def _fiscal_year_start(read: _Environment) -> str:
    """FISCAL_YEAR_START: a day every year has (so not 02-29), written MM-DD."""
    value = read.text("FISCAL_YEAR_START") or str(_DEFAULTS["fiscal_year_start"])
    month, _, day = value.partition("-")
    try:
        digits = (month + day).isascii() and (month + day).isdigit()
        valid = digits and len(month) == len(day) == 2 and bool(date(2025, int(month), int(day)))
    except ValueError:
        valid = False
    if not valid:
        read.problems.append(
            'FISCAL_YEAR_START must be the first day of the fiscal year as MM-DD, like "01-01" '
            'or "04-01" (not 02-29).'
        )
        return str(_DEFAULTS["fiscal_year_start"])
    return value


# Longest tax wording a statement carries.
MAX_TAX_TEXT = 1000


def _statement_tax_text(read: _Environment) -> str | None:
    value = " ".join(read.text("STATEMENT_TAX_TEXT").split()) or None
    if value is not None and (len(value) > MAX_TAX_TEXT or not value.isprintable()):
        read.problems.append(
            f"STATEMENT_TAX_TEXT must be at most {MAX_TAX_TEXT} printable characters."
        )
        return None
    return value


def _log_format(read: _Environment) -> str:
    log_format = read.text("LOG_FORMAT").lower() or str(_DEFAULTS["log_format"])
    if log_format not in {"json", "text"}:
        read.problems.append("LOG_FORMAT must be json or text.")
    return log_format


# The reasons /manage words in every language; others are given as key:Label.
CANCEL_REASON_KEYS = (
    "too_expensive",
    "not_reading",
    "other_causes",
    "temporary",
    "disagree",
    "service",
    "other",
)
# The offers /manage can make instead of a cancellation.
CANCEL_OFFER_CHOICES = ("pause", "lower_amount", "annual", "reminder")
MAX_CANCEL_REASONS = 12
_REASON_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _cancel_reasons(read: _Environment) -> tuple[tuple[str, str], ...]:
    """CANCEL_REASONS: comma-separated keys, built-in or ``key:Label as shown``."""
    raw = read.text("CANCEL_REASONS")
    default: tuple[tuple[str, str], ...] = _DEFAULTS["cancel_reasons"]
    if not raw:
        return default
    problem = (
        "CANCEL_REASONS must be 1 to 12 comma-separated reasons, each a built-in one ("
        + ", ".join(CANCEL_REASON_KEYS)
        + ") or key:Label (key: a-z, 0-9 and _, at most 40; label: one line, at most 80)."
    )
    reasons: list[tuple[str, str]] = []
    for entry in raw.split(","):
        key, colon, label = entry.strip().partition(":")
        key, label = key.strip(), " ".join(label.split())
        valid_key = 0 < len(key) <= 40 and set(key) <= _REASON_KEY_CHARS
        valid_label = (
            (label == "" and key in CANCEL_REASON_KEYS)
            if not colon
            else (0 < len(label) <= 80 and label.isprintable())
        )
        if not (valid_key and valid_label):
            read.problems.append(problem)
            return default
        reasons.append((key, label))
    keys = [key for key, _ in reasons]
    if not 0 < len(reasons) <= MAX_CANCEL_REASONS or len(set(keys)) != len(keys):
        read.problems.append(problem)
        return default
    return tuple(reasons)


def _cancel_offers(read: _Environment) -> tuple[str, ...]:
    """CANCEL_OFFERS: comma-separated offers made instead of cancelling, or ``none``."""
    raw = read.text("CANCEL_OFFERS").lower()
    if not raw:
        return tuple(_DEFAULTS["cancel_offers"])
    if raw == "none":
        return ()
    offers = tuple(part.strip() for part in raw.split(","))
    if any(o not in CANCEL_OFFER_CHOICES for o in offers) or len(set(offers)) != len(offers):
        read.problems.append(
            "CANCEL_OFFERS must be none or some of " + ", ".join(CANCEL_OFFER_CHOICES) + "."
        )
        return tuple(_DEFAULTS["cancel_offers"])
    return offers


_UPGRADE_OFFER_PROBLEM = (
    "RECEIPT_UPGRADE_OFFER must be none, annual, annual:N (N months' gifts a year, 6-12) "
    "or raise:P (P percent more each month, 1-100)."
)


def _receipt_upgrade_offer(read: _Environment) -> tuple[str, int] | None:
    """RECEIPT_UPGRADE_OFFER: the change a monthly plan's receipt proposes, if any."""
    raw = read.text("RECEIPT_UPGRADE_OFFER").lower()
    if raw in ("", "none"):
        return None
    kind, _, number = raw.partition(":")
    limits = {"annual": (6, 12), "raise": (1, 100)}.get(kind)
    if kind == "annual" and not number:
        number = "12"
    if limits is None or not (number.isascii() and number.isdigit()):
        read.problems.append(_UPGRADE_OFFER_PROBLEM)
        return None
    if not limits[0] <= int(number) <= limits[1]:
        read.problems.append(_UPGRADE_OFFER_PROBLEM)
        return None
    return kind, int(number)


def _metrics_token(read: _Environment) -> str | None:
    metrics_token = read.text("METRICS_TOKEN") or None
    if metrics_token is not None and len(metrics_token) < 16:
        read.problems.append("METRICS_TOKEN must be at least 16 characters.")
    return metrics_token


# Longest value taken for a name, an address or a URL of the newsroom's.
MAX_NEWSROOM_TEXT = 500


def _one_line(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    """A value shown on a page as one line (runs of spaces and line breaks become a space)."""
    value = " ".join(env.get(name, "").split()) or None
    if value is not None and (len(value) > MAX_NEWSROOM_TEXT or not value.isprintable()):
        problems.append(f"{name} must be at most {MAX_NEWSROOM_TEXT} printable characters.")
        return None
    return value


def _page_url(env: Mapping[str, str], name: str, live: bool, problems: list[str]) -> str | None:
    """An absolute http(s) address of the newsroom's own page, or None (the built-in one)."""
    value = env.get(name, "").strip() or None
    if value is None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = urlsplit("")
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(value) > MAX_NEWSROOM_TEXT
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        problems.append(f"{name} must be an absolute http(s) URL (or unset for the built-in page).")
        return None
    if live and parts.scheme != "https":
        problems.append(f"{name} must be https:// when live Stripe keys are used.")
    return value


def _newsroom(env: Mapping[str, str], mail_from: str, live: bool, problems: list[str]) -> Newsroom:
    """Who the built-in privacy and imprint pages name, and where the newsroom's own are.

    With live keys a built-in page must name someone: a privacy policy without
    a controller, or an imprint without a publisher, is worse than none.
    """
    name = _one_line(env, "NEWSROOM_NAME", problems)
    address = _one_line(env, "NEWSROOM_ADDRESS", problems)
    contact = env.get("NEWSROOM_CONTACT_EMAIL", "").strip()
    if contact:
        _, parsed = parseaddr(contact)
        if (
            parsed != contact
            or "@" not in contact
            or len(contact) > 254
            or not contact.isprintable()
            or " " in contact
        ):
            problems.append(
                "NEWSROOM_CONTACT_EMAIL must be one email address, like news@example.org."
            )
    else:
        # Replies to our emails reach the newsroom there already.
        contact = parseaddr(mail_from)[1] or "donations@localhost"
    privacy = _page_url(env, "PRIVACY_POLICY_URL", live, problems)
    imprint = _page_url(env, "IMPRINT_URL", live, problems)
    own = {"PRIVACY_POLICY_URL": privacy, "IMPRINT_URL": imprint}
    built_in = [setting for setting, url in own.items() if url is None]
    if live and built_in and name is None:
        problems.append(
            "NEWSROOM_NAME must be set when live Stripe keys are used: the built-in privacy "
            f"and imprint pages name the newsroom (or set {' and '.join(built_in)} "
            "to the newsroom's own pages)."
        )
    return Newsroom(
        name=name,
        contact_email=contact,
        address=address,
        privacy_policy_url=privacy,
        imprint_url=imprint,
    )
