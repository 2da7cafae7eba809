"""Configuration from the environment (12-factor), validated at start-up.

Every problem is collected and reported at once, so an operator fixes the
environment in one go instead of one restart per missing variable.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit


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


@dataclass(frozen=True)
class Settings:
    secret_key: str
    database_url: str
    stripe_secret_key: str
    stripe_publishable_key: str
    stripe_webhook_secret: str
    stripe_api_base: str | None
    base_url: str
    redis_url: str | None
    smtp_url: str | None
    mail_from: str
    mail_dir: Path
    reporting_time_zone: str = "UTC"
    trusted_proxies: int = 0
    checkout_rate_limit: str = "10 per minute;40 per hour"
    reminder_rate_limit: str = "5 per minute;30 per hour"
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
    instance_path: Path = PROJECT_ROOT / "instance"
    newsroom: Newsroom = field(default_factory=Newsroom)
    # Where reports prepared in the background are written (shared by web and
    # workers), and after how long they are deleted.
    export_dir: Path = PROJECT_ROOT / "instance" / "exports"
    export_retention_hours: int = 24

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
    """Read and validate the settings; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []

    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is not set.")
        return value

    secret_key = required("SECRET_KEY")
    if secret_key and (len(secret_key) < 32 or key_entropy_bits(secret_key) < MIN_KEY_BITS):
        problems.append(
            "SECRET_KEY must be at least 32 characters of random data "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(48))").'
        )
    # Older keys, newest first, still accepted for cookies and signed links while
    # they age out: rotate by moving SECRET_KEY here and setting a new one.
    fallbacks = [k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
    if any(key_entropy_bits(k) < MIN_KEY_BITS or len(k) < 32 for k in fallbacks):
        problems.append(
            "Each of SECRET_KEY_FALLBACKS must be at least 32 characters of random data."
        )

    database_url = required("DATABASE_URL")
    if database_url:
        if database_url.startswith("postgres://") or database_url.startswith("postgresql://"):
            # SQLAlchemy 2 needs the driver spelled out; psycopg 3 is the one we ship.
            database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
        if not database_url.startswith(("sqlite", "postgresql+psycopg://")):
            problems.append("DATABASE_URL must be a sqlite:/// or postgresql:// URL.")
        database_url = _absolute_sqlite_url(database_url)

    secret = required("STRIPE_SECRET_KEY")
    publishable = required("STRIPE_PUBLISHABLE_KEY")
    webhook_secret = required("STRIPE_WEBHOOK_SECRET")
    api_base = env.get("STRIPE_API_BASE", "").strip() or None
    if secret and not secret.startswith(("sk_", "rk_")):
        problems.append("STRIPE_SECRET_KEY must start with sk_ or rk_.")
    if publishable and not publishable.startswith("pk_"):
        problems.append("STRIPE_PUBLISHABLE_KEY must start with pk_.")
    if webhook_secret and not webhook_secret.startswith("whsec_"):
        problems.append("STRIPE_WEBHOOK_SECRET must start with whsec_.")
    if secret and publishable:
        secret_live = secret.startswith(LIVE_PREFIXES)
        if secret_live != publishable.startswith("pk_live_"):
            problems.append("STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY mix live and test modes.")
    if api_base:
        host = urlsplit(api_base).hostname or ""
        if secret.startswith(LIVE_PREFIXES):
            problems.append(
                "A live Stripe key cannot be used with STRIPE_API_BASE (the simulator); "
                "unset STRIPE_API_BASE to use Stripe."
            )
        if host not in ("127.0.0.1", "localhost", "::1"):
            problems.append("STRIPE_API_BASE is only for the local simulator on loopback.")

    base_url = env.get("BASE_URL", "http://127.0.0.1:5000").strip().rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
        problems.append("BASE_URL must be an absolute http(s) URL.")
    elif secret.startswith(LIVE_PREFIXES) and not base_url.startswith("https://"):
        problems.append("BASE_URL must be https:// when live Stripe keys are used.")

    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append("REDIS_URL must be a redis:// or rediss:// URL.")
    elif redis_url is None and secret.startswith(LIVE_PREFIXES):
        # Rate limits and the declined-payment block live in each process's memory
        # without Redis: with several workers a card tester gets several budgets.
        problems.append("REDIS_URL must be set when live Stripe keys are used.")

    smtp_url = env.get("SMTP_URL", "").strip() or None
    if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtps", "smtp+starttls"):
        problems.append("SMTP_URL must be smtp://, smtp+starttls:// or smtps://.")
    mail_from = env.get("MAIL_FROM", "").strip()
    if not mail_from:
        if smtp_url:
            problems.append("MAIL_FROM is not set (required with SMTP_URL).")
        mail_from = "Donations <donations@localhost>"
    if "\n" in mail_from or "\r" in mail_from:
        problems.append("MAIL_FROM must be a single line.")

    instance = project_path(env.get("INSTANCE_PATH", "").strip() or "instance")
    mail_dir = project_path(env.get("MAIL_DIR", "").strip() or instance / "mail")

    proxies_raw = env.get("TRUSTED_PROXIES", "0").strip() or "0"
    trusted_proxies = 0
    if not (proxies_raw.isascii() and proxies_raw.isdigit()):
        problems.append("TRUSTED_PROXIES must be the number of proxies in front of the app.")
    else:
        trusted_proxies = int(proxies_raw)

    zone = env.get("REPORTING_TIME_ZONE", "UTC").strip() or "UTC"
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
    except Exception:
        problems.append(f"REPORTING_TIME_ZONE {zone!r} is not a known time zone.")

    def seconds(name: str, default: float) -> float:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3600:
            problems.append(f"{name} must be a number of seconds between 0 and 3600.")
            return default
        return value

    smtp_timeout = seconds("SMTP_TIMEOUT", 15.0)
    dispatch_interval = seconds("DISPATCH_INTERVAL_SECONDS", 60.0)

    thanks_raw = env.get("THANKS_PAGE_DAYS", "").strip() or "30"
    thanks_page_days = 30
    if not (thanks_raw.isascii() and thanks_raw.isdigit() and 1 <= int(thanks_raw) <= 3650):
        problems.append("THANKS_PAGE_DAYS must be a number of days between 1 and 3650.")
    else:
        thanks_page_days = int(thanks_raw)

    log_format = env.get("LOG_FORMAT", "").strip().lower() or "json"
    if log_format not in {"json", "text"}:
        problems.append("LOG_FORMAT must be json or text.")
    metrics_token = env.get("METRICS_TOKEN", "").strip() or None
    if metrics_token is not None and len(metrics_token) < 16:
        problems.append("METRICS_TOKEN must be at least 16 characters.")
    expiry_raw = env.get("CHECKOUT_EXPIRY_HOURS", "").strip() or "24"
    checkout_expiry_hours = 24
    if not (expiry_raw.isascii() and expiry_raw.isdigit() and 1 <= int(expiry_raw) <= 720):
        problems.append("CHECKOUT_EXPIRY_HOURS must be a number of hours between 1 and 720.")
    else:
        checkout_expiry_hours = int(expiry_raw)
    export_dir = project_path(env.get("EXPORT_DIR", "").strip() or instance / "exports")
    retention_raw = env.get("EXPORT_RETENTION_HOURS", "").strip() or "24"
    export_retention_hours = 24
    if not (retention_raw.isascii() and retention_raw.isdigit() and 1 <= int(retention_raw) <= 720):
        problems.append("EXPORT_RETENTION_HOURS must be a number of hours between 1 and 720.")
    else:
        export_retention_hours = int(retention_raw)

    newsroom = _newsroom(env, mail_from, secret.startswith(LIVE_PREFIXES), problems)

    if problems:
        raise ConfigError(problems)
    return Settings(
        secret_key=secret_key,
        database_url=database_url,
        stripe_secret_key=secret,
        stripe_publishable_key=publishable,
        stripe_webhook_secret=webhook_secret,
        stripe_api_base=api_base,
        base_url=base_url,
        redis_url=redis_url,
        smtp_url=smtp_url,
        mail_from=mail_from,
        mail_dir=mail_dir,
        reporting_time_zone=zone,
        trusted_proxies=trusted_proxies,
        checkout_rate_limit=env.get("CHECKOUT_RATE_LIMIT", "").strip()
        or "10 per minute;40 per hour",
        reminder_rate_limit=env.get("REMINDER_RATE_LIMIT", "").strip()
        or "5 per minute;30 per hour",
        smtp_timeout=smtp_timeout,
        dispatch_interval=dispatch_interval,
        secret_key_fallbacks=tuple(fallbacks),
        thanks_page_days=thanks_page_days,
        log_format=log_format,
        metrics_token=metrics_token,
        checkout_expiry_hours=checkout_expiry_hours,
        export_dir=export_dir,
        export_retention_hours=export_retention_hours,
        instance_path=instance,
        newsroom=newsroom,
    )


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
