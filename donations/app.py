"""The application factory: small register_* steps, in order."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from flask import Flask, current_app, render_template, request, session
from flask_babel import get_locale
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from donations.config import Settings, load_settings
from donations.db import db
from donations.extensions import babel, csrf, limiter, migrate, talisman
from donations.money import Money

LANGUAGES = ("en", "ru")
ROOT = Path(__file__).resolve().parent.parent


def create_app(env: Mapping[str, str] | None = None, **overrides: Any) -> Flask:
    settings = load_settings(env)
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(
            Path(env.get("INSTANCE_PATH", "instance") if env else "instance").resolve()
        ),
    )
    app.config.from_mapping(settings.as_flask_config())
    app.config["SETTINGS"] = settings
    app.config.update(overrides)
    register_logging(app)
    register_proxy(app, settings)
    register_extensions(app, settings)
    register_services(app, settings)
    register_blueprints(app)
    register_errors(app)
    register_templates(app)
    register_cli(app)
    return app


def register_logging(app: Flask) -> None:
    if not app.debug and not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def register_proxy(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        # Believe X-Forwarded-* only as far as the configured proxies go, so a
        # reader cannot spoof their address past the rate limits.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]


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
    import_models()
    # Batch mode lets Alembic alter tables on SQLite (copy and move).
    migrate.init_app(
        app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)
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


def import_models() -> None:
    """Import every model module so the metadata (and Alembic) sees all tables."""
    import donations.mail.models
    import donations.payments.models
    import donations.reminders.models
    import donations.staff.models
    import donations.support.models
    import donations.supporters.models  # noqa: F401


def register_services(app: Flask, settings: Settings) -> None:
    from donations.mail.transport import FileTransport, SMTPTransport
    from donations.payments.stripe_gateway import StripeGateway
    from donations.tasks import init_celery

    app.extensions["payment_gateway"] = StripeGateway(
        secret_key=settings.stripe_secret_key,
        publishable_key=settings.stripe_publishable_key,
        webhook_secret=settings.stripe_webhook_secret,
        api_base=settings.stripe_api_base,
    )
    if settings.smtp_url:
        smtp_url, smtp_timeout = settings.smtp_url, settings.smtp_timeout
        app.extensions["mail_transport"] = lambda: SMTPTransport(smtp_url, smtp_timeout)
    else:
        mail_dir = (
            settings.mail_dir if settings.mail_dir.is_absolute() else Path.cwd() / settings.mail_dir
        )
        app.extensions["mail_transport"] = lambda: FileTransport(mail_dir)
    init_celery(app)


def register_blueprints(app: Flask) -> None:
    from donations.payments.views import bp as payments_bp
    from donations.reminders.views import bp as reminders_bp
    from donations.reports.views import bp as reports_bp
    from donations.staff.views import bp as staff_bp
    from donations.support.views import bp as support_bp

    app.register_blueprint(support_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(reminders_bp)
    app.register_blueprint(reports_bp)

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
        target = request.args.get("next", "/")
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"
        return redirect(target)


def select_locale() -> str:
    wanted = request.args.get("lang")
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


@lru_cache(maxsize=4096)
def major_text(amount: int, currency: str) -> str:
    return Money(amount, currency).major_text()


def register_templates(app: Flask) -> None:
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

    def date_text(value: str | datetime) -> str:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        zone = ZoneInfo(app.config["SETTINGS"].reporting_time_zone)
        return format_date(moment.astimezone(zone), "long", locale=str(get_locale() or "en"))

    app.jinja_env.filters["datetime_text"] = datetime_text
    app.jinja_env.filters["date_text"] = date_text
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["major"] = major
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES

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
