"""Every implementation satisfies its protocol, and Settings choose which one the app uses.

``mypy --strict`` checks the factories in ``donations/providers.py`` (the
static half); this checks the same at run time, member by member, so a method
added to a protocol and forgotten in an implementation fails here too.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from donations.mail.transport import FileTransport, MailTransport, SMTPTransport
from donations.payments.gateway import PaymentGateway
from donations.payments.stripe_gateway import StripeGateway
from donations.providers import mail_transport_factory, payment_gateway

IMPLEMENTATIONS: list[tuple[type[Any], type[Any]]] = [
    (PaymentGateway, StripeGateway),
    (MailTransport, SMTPTransport),
    (MailTransport, FileTransport),
]


def members(protocol: type[Any]) -> list[str]:
    return [
        name
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    ]


def differences(protocol: type[Any], implementation: type[Any]) -> list[str]:
    found = []
    for name in members(protocol):
        if not hasattr(implementation, name):
            found.append(f"{name}: missing")
            continue
        wanted = inspect.signature(getattr(protocol, name)).parameters
        have = inspect.signature(getattr(implementation, name)).parameters
        shape = [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in wanted.values()]
        if shape != [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in have.values()]:
            found.append(f"{name}: {list(have)} instead of {list(wanted)}")
    return found


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    IMPLEMENTATIONS,
    ids=[f"{p.__name__}-{i.__name__}" for p, i in IMPLEMENTATIONS],
)
def test_implementation_satisfies_its_protocol(
    protocol: type[Any], implementation: type[Any]
) -> None:
    assert members(protocol)
    assert differences(protocol, implementation) == []


def test_the_check_sees_a_missing_or_different_method() -> None:
    class Half:
        def send(self, message: Any, extra: int) -> None: ...

    assert differences(MailTransport, Half) == [
        "send: ['self', 'message', 'extra'] instead of ['self', 'message']",
        "close: missing",
    ]


def test_settings_choose_the_implementations(app: Flask, tmp_path: Path) -> None:
    settings = app.config["SETTINGS"]
    assert isinstance(payment_gateway(settings), StripeGateway)
    assert isinstance(app.extensions["payment_gateway"], StripeGateway)
    smtp = mail_transport_factory(replace(settings, smtp_url="smtp://127.0.0.1:2525"))()
    assert isinstance(smtp, SMTPTransport)
    files = mail_transport_factory(replace(settings, smtp_url=None, mail_dir=tmp_path))()
    assert isinstance(files, FileTransport)
