"""The implementations behind the provider seams, chosen from ``Settings`` in this one place.

Each factory is typed with its protocol as the return type, so ``mypy
--strict`` (``make typecheck``) checks that ``StripeGateway`` satisfies
``PaymentGateway`` and each transport ``MailTransport``; the app reads them
back through :func:`donations.payments.services.gateway` and
:func:`donations.mail.sender.transport`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask

from donations.config import Settings
from donations.mail.transport import FileTransport, MailTransport, SMTPTransport
from donations.payments.gateway import PaymentGateway
from donations.payments.stripe_gateway import StripeGateway

# A transport lives for one batch of messages: the sender asks for a new one each time.
MailTransportFactory = Callable[[], MailTransport]


def payment_gateway(settings: Settings) -> PaymentGateway:
    return StripeGateway(
        secret_key=settings.stripe_secret_key,
        publishable_key=settings.stripe_publishable_key,
        webhook_secret=settings.stripe_webhook_secret,
        api_base=settings.stripe_api_base,
    )


def mail_transport_factory(settings: Settings) -> MailTransportFactory:
    """SMTP when ``SMTP_URL`` is set; otherwise files in ``MAIL_DIR`` (the embedded default)."""
    if settings.smtp_url:
        url, timeout = settings.smtp_url, settings.smtp_timeout

        def smtp() -> MailTransport:
            return SMTPTransport(url, timeout)

        return smtp
    directory = (
        settings.mail_dir if settings.mail_dir.is_absolute() else Path.cwd() / settings.mail_dir
    )

    def files() -> MailTransport:
        return FileTransport(directory)

    return files


def register_providers(app: Flask, settings: Settings) -> None:
    app.extensions["payment_gateway"] = payment_gateway(settings)
    app.extensions["mail_transport"] = mail_transport_factory(settings)
