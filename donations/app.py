"""The application factory: small register_* steps, in order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from flask import (
    Flask,
    current_app,
    has_request_context,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from donations import observability, public
from donations.cards import card_label
from donations.config import Settings, load_settings
from donations.db import db
from donations.extensions import babel, csrf, limiter, migrate, talisman
from donations.money import Money
from donations.security import register_log_redaction, register_request_guards, safe_path

LANGUAGES = ("en", "ru")
ROOT = Path(__file__).resolve().parent.parent


class DonationsApp(Flask):
    """Flask, remembering which views and hooks are plain functions.

    Flask asks ``inspect.iscoroutinefunction`` about every hook and view on
    every request (``ensure_sync``, its documented override point); with a
    dozen hooks that is a good part of what a public page costs. The answer
    never changes for a given function, so it is worked out once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_callables: dict[Any, Any] = {}

    def ensure_sync(self, func: Any) -> Any:
        try:
            return self._sync_callables[func]
        except KeyError:
            sync = self._sync_callables[func] = super().ensure_sync(func)
            return sync
        except TypeError:  # unhashable: ask every time
            return super().ensure_sync(func)


def create_app(env: Mapping[str, str] | None = None, **overrides: Any) -> Flask:
    settings = load_settings(env)
    app = DonationsApp(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(settings.instance_path),
    )
    app.config.from_mapping(settings.as_flask_config())
    app.config["SETTINGS"] = settings
    app.config.update(overrides)
    register_proxy(app, settings)
    register_request_guards(app)
    register_extensions(app, settings)
    register_services(app, settings)
    register_blueprints(app)
    register_log_redaction(app)
    register_errors(app)
    register_templates(app)
    register_cli(app)
    from donations.operations.backlog import backlog

    observability.init_app(app, backlog)  # last: its middleware is the outermost
    return app


def register_proxy(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        # Believe X-Forwarded-For/-Proto only as far as the configured proxies go,
        # so a reader cannot spoof their address past the rate limits. Never
        # X-Forwarded-Host: absolute URLs come from BASE_URL, not from a header.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]


def content_security_policy(settings: Settings) -> str:
    """Only what Stripe.js needs, per https://docs.stripe.com/security/guide#content-security-policy."""
    stripe_origin = settings.stripe_api_base.rstrip("/") if settings.stripe_api_base else None
    scripts = ["'self'", stripe_origin or "https://js.stripe.com"]
    frames = ["https://js.stripe.com", "https://hooks.stripe.com"]
    connect = ["'self'", stripe_origin or "https://api.stripe.com"]
    if stripe_origin:
        frames.append(stripe_origin)
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "script-src": scripts,
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "https://*.stripe.com"],
        "frame-src": frames,
        "connect-src": connect,
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    # Built once as a string: Talisman would otherwise re-serialise it per response.
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def register_extensions(app: Flask, settings: Settings) -> None:
    db.init_app(app)
    # Before the page cache wraps the app: kept answers carry the headers.
    talisman.init_app(
        app,
        force_https=settings.secure_cookies,
        strict_transport_security=settings.secure_cookies,
        session_cookie_secure=settings.secure_cookies,
        content_security_policy=content_security_policy(settings),
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        permissions_policy={
            "geolocation": "()",
            "camera": "()",
            "microphone": "()",
            "payment": "self",
        },
    )
    public.init_app(app)
    import_models()
    # Batch mode lets Alembic alter tables on SQLite (copy and move).
    migrate.init_app(
        app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)


def import_models() -> None:
    """Import every model module so the metadata (and Alembic) sees all tables."""
    import donations.ask.models
    import donations.embed.experiments.models
    import donations.embed.models
    import donations.mail.models
    import donations.manage.models
    import donations.payments.models
    import donations.reminders.models
    import donations.staff.models
    import donations.support.models
    import donations.supporters.models
    import donations.supporters.retention  # noqa: F401


def register_services(app: Flask, settings: Settings) -> None:
    from donations.providers import register_providers
    from donations.tasks import init_celery

    register_providers(app, settings)
    init_celery(app)


def register_blueprints(app: Flask) -> None:
    from donations.embed.views import bp as embed_bp
    from donations.manage.offer_views import bp as manage_offers_bp
    from donations.manage.pause_views import bp as manage_pause_bp
    from donations.manage.plan_views import bp as manage_bp  # the portal, with plan changes
    from donations.manage.staff_views import bp as manage_staff_bp
    from donations.payments.views import bp as payments_bp
    from donations.reminders.views import bp as reminders_bp
    from donations.staff.reports.views import bp as reports_bp
    from donations.staff.views import bp as staff_bp
    from donations.support.views import bp as support_bp

    app.register_blueprint(support_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(reminders_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(embed_bp)
    app.register_blueprint(manage_bp)
    app.register_blueprint(manage_staff_bp)
    app.register_blueprint(manage_offers_bp)
    app.register_blueprint(manage_pause_bp)

    @app.get("/")
    def index() -> Any:
        from flask import redirect, url_for

        return redirect(url_for("support.ask"))

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        try:
            db.session.execute(text("SELECT 1"))
        except Exception:
            current_app.logger.exception("health check: database unreachable")
            db.session.rollback()
            return {"status": "unavailable", "database": "unreachable"}, 503
        return {"status": "ok", "database": "ok"}, 200

    @app.get("/language/<code>")
    def set_language(code: str) -> Any:
        from flask import redirect

        if code in LANGUAGES:
            session["lang"] = code
        # The choice just made wins: a ?lang= left in the return address would undo it.
        return redirect(without_lang(safe_path(request.args.get("next"))))


def without_lang(path: str) -> str:
    """``path`` without its ``lang`` query parameter (the language switch's return address)."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    return urlunsplit(("", "", parts.path, urlencode(query), parts.fragment))


# Blueprints of the back office: its numbers, money and dates follow the staff
# member's own choice (StaffUser.locale), English until they choose.
BACK_OFFICE_BLUEPRINTS = ("staff", "reports", "manage_staff", "manage_offers")


def select_locale() -> str:
    # A shell command or a task (no request) speaks English unless it forces a locale.
    if not has_request_context():
        return "en"
    wanted = request.args.get("lang")
    if request.blueprint in BACK_OFFICE_BLUEPRINTS:
        # A ?lang= on a back-office URL shows that page so (not remembered); the
        # reader-side cookie and the browser's languages are not asked.
        if wanted in LANGUAGES:
            return wanted
        from donations.staff.auth import current_staff

        staff = current_staff()
        return staff.locale if staff is not None and staff.locale in LANGUAGES else "en"
    if wanted in LANGUAGES:
        session["lang"] = wanted
        return wanted
    if session.get("lang") in LANGUAGES:
        return str(session["lang"])
    return request.accept_languages.best_match(LANGUAGES) or "en"


def register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/webhooks/"):
            return f"{exc.code} {exc.name}\n", exc.code
        return render_template(
            "errors/error.html", error=exc, locale=str(get_locale() or "en")
        ), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Any:
        # Never a stack trace to the browser; the log has it.
        current_app.logger.exception("unhandled error")
        db.session.rollback()
        if request.path.startswith("/webhooks/"):
            return "500 Internal Server Error\n", 500
        return render_template(
            "errors/error.html", error=None, locale=str(get_locale() or "en")
        ), 500


@lru_cache(maxsize=4096)
def money_text(amount: int, currency: str, locale: str) -> str:
    """``Money.format`` memoised: Babel takes ~45 us a call, and the ask shows 54 amounts."""
    return Money(amount, currency).format(locale)


def moment_with_zone(moment: datetime, zone: str, locale: str) -> str:
    """When something happened, for a reader: the date, the time and its zone, in
    ``locale`` ("December 1, 2026, 2:05 PM UTC", "1 декабря 2026 г., 14:05 UTC").

    The zone is its short name where the locale has one (UTC, EST), else the
    offset in CLDR's localized GMT format ("GMT+01:00"); naive values are UTC,
    as SQLite returns them.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(ZoneInfo(zone))
    name = format_time(local, "z", locale=locale)
    if not name.isalpha():
        name = format_time(local, "ZZZZ", locale=locale)
    time = f"{format_time(local, 'short', locale=locale)} {name}"
    pattern = str(Locale.parse(locale).datetime_formats["medium"])
    return pattern.replace("{1}", format_date(local, "long", locale=locale)).replace("{0}", time)


@lru_cache(maxsize=4096)
def major_text(amount: int, currency: str) -> str:
    return Money(amount, currency).major_text()


def register_templates(app: Flask) -> None:
    register_template_filters(app)
    register_template_globals(app)


def register_template_filters(app: Flask) -> None:
    """Money, dates and card labels as templates show them, in the reader's locale."""

    @pass_context
    def money(context: Context, amount: int | None, currency: str) -> str:
        if amount is None:
            return ""
        # The context processor's current_locale is get_locale() for this render;
        # reading it skips Flask-Babel's context lookups once per amount shown.
        locale = context.get("current_locale") or str(get_locale() or "en")
        return money_text(int(amount), currency, locale)

    def major(amount: int, currency: str) -> str:
        return major_text(int(amount), currency)

    def datetime_text(value: str | datetime) -> str:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        zone = ZoneInfo(app.config["SETTINGS"].reporting_time_zone)
        return format_datetime(moment.astimezone(zone), "medium", locale=str(get_locale() or "en"))

    def date_text(value: str | date | datetime) -> str:
        """An instant's day in REPORTING_TIME_ZONE; a day (``date``, "YYYY-MM-DD") as it is."""
        if isinstance(value, str):
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        if isinstance(value, datetime):
            value = value.astimezone(ZoneInfo(app.config["SETTINGS"].reporting_time_zone))
        return format_date(value, "long", locale=str(get_locale() or "en"))

    def datetime_with_zone(value: str | datetime) -> str:
        """Receipt times (emails, thank-you pages) in REPORTING_TIME_ZONE, saying so."""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        zone = app.config["SETTINGS"].reporting_time_zone
        return moment_with_zone(moment, zone, str(get_locale() or "en"))

    app.jinja_env.filters["datetime_text"] = datetime_text
    app.jinja_env.filters["datetime_with_zone"] = datetime_with_zone
    # For <time datetime>: an instant with its offset (SQLite's naive values are UTC).
    app.jinja_env.filters["iso_utc"] = lambda moment: (
        (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        .astimezone(UTC)
        .isoformat(timespec="seconds")
    )
    app.jinja_env.filters["date_text"] = date_text
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["major"] = major
    app.jinja_env.filters["card"] = card_label


def register_template_globals(app: Flask) -> None:
    """Languages, the newsroom's pages, form error attributes and the page context."""
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["without_lang"] = without_lang

    def newsroom_page(endpoint: str, own: str | None) -> str:
        """The newsroom's own page if it has one, else ours (absolute in an email)."""
        if own:
            return own
        if has_request_context():
            return url_for(endpoint)
        path = app.url_map.bind("localhost").build(endpoint)
        return str(app.config["SETTINGS"].base_url + path)

    def error_attrs(field: Any, described_by: str = "") -> dict[str, str]:
        """A form field's attributes that tie it to its error message, when it has one."""
        if not field.errors:
            return {"aria-describedby": described_by} if described_by else {}
        ids = f"{field.id}-errors {described_by}".strip()
        return {"aria-invalid": "true", "aria-describedby": ids}

    app.jinja_env.globals["error_attrs"] = error_attrs
    app.jinja_env.globals["privacy_url"] = lambda: newsroom_page(
        "support.privacy", app.config["SETTINGS"].newsroom.privacy_policy_url
    )
    app.jinja_env.globals["imprint_url"] = lambda: newsroom_page(
        "support.imprint", app.config["SETTINGS"].newsroom.imprint_url
    )

    @app.context_processor
    def inject() -> dict[str, Any]:
        settings: Settings = app.config["SETTINGS"]
        return {
            "simulated_payments": settings.simulated_payments,
            "stripe_js_url": settings.stripe_js_url,
            "current_locale": str(get_locale() or "en"),
        }


def register_cli(app: Flask) -> None:
    from donations.cli import register

    register(app)
