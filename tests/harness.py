"""Real peers for the tests: the Stripe simulator, an SMTP server, a live app.

Nothing here is mocked: each helper starts the actual component on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask
from werkzeug.serving import make_server


def sign_webhook_payload(payload: str, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value for ``payload``, as Stripe computes it.

    https://docs.stripe.com/webhooks#verify-manually (test-only: production
    only ever verifies, through the gateway).
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_test_" + "s" * 24
# Random-looking enough for the SECRET_KEY entropy check; fixed so runs repeat.
SECRET_KEY = "test-LJ2v9QmXc4RtZ8pWy7NbK3sHf6DgA1eU0oIrTq5VwEz"


def change_settings(monkeypatch: pytest.MonkeyPatch, app: Flask, **changes: object) -> None:
    """Run the rest of the test with these Settings fields changed."""
    monkeypatch.setitem(app.config, "SETTINGS", replace(app.config["SETTINGS"], **changes))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Simulator:
    """The adapted localstripe, run as its own process on loopback."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state_dir / "simulator.log"
        self._log_file = self.log.open("wb")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.simulator",
                "--port",
                str(self.port),
                "--state",
                str(state_dir / "simulator.pickle"),
                "--from-scratch",
            ],
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SIMULATOR_SEPA_SETTLE_SECONDS": "1"},
        )
        wait_for_port(self.port)

    def reset(self) -> None:
        requests.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def register_webhook(self, url: str, secret: str = WEBHOOK_SECRET) -> None:
        requests.post(
            f"{self.url}/_config/webhooks/test", data={"url": url, "secret": secret}, timeout=10
        ).raise_for_status()
        self._webhook = (url, secret)
        self._muted = False

    def mute(self) -> None:
        """From now on no event from the simulator reaches the app (until :meth:`unmute`)."""
        registered = getattr(self, "_webhook", None)
        if registered is None or getattr(self, "_muted", False):
            return
        requests.post(
            f"{self.url}/_config/webhooks/test",
            json={"url": registered[0], "secret": registered[1], "events": ["none.at_all"]},
            timeout=10,
        ).raise_for_status()
        self._muted = True

    def unmute(self) -> None:
        registered = getattr(self, "_webhook", None)
        if registered is not None and getattr(self, "_muted", False):
            self.register_webhook(*registered)

    @contextmanager
    def muted(self) -> Iterator[None]:
        """No event from the simulator reaches the app meanwhile (a test delivers its own)."""
        if getattr(self, "_muted", False):
            yield
            return
        self.mute()
        try:
            yield
        finally:
            self.unmute()

    def confirm(self, client_secret: str, card: str = "4242424242424242") -> requests.Response:
        """Confirm a PaymentIntent the way the page's Stripe.js does."""
        intent_id = client_secret.split("_secret_")[0]
        return requests.post(
            f"{self.url}/v1/payment_intents/{intent_id}/confirm",
            json={
                "key": "pk_test_local",
                "client_secret": client_secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": card, "exp_month": "12", "exp_year": "34", "cvc": "123"},
                },
            },
            timeout=10,
        )

    def authenticate(self, client_secret: str, success: bool) -> requests.Response:
        intent_id = client_secret.split("_secret_")[0]
        return requests.post(
            f"{self.url}/v1/payment_intents/{intent_id}/_authenticate",
            json={"key": "pk_test_local", "client_secret": client_secret, "success": success},
            timeout=10,
        )

    def confirm_setup(
        self, client_secret: str, card: str = "4242424242424242"
    ) -> requests.Response:
        """Save a card (or, given an IBAN, a SEPA mandate) as the page's Stripe.js does."""
        intent_id = client_secret.split("_secret_")[0]
        if card.startswith(("DE", "FR", "NL")):
            method = {
                "type": "sepa_debit",
                "sepa_debit": {"iban": card},
                "billing_details": {"name": "Ada Reader", "email": "reader@example.org"},
            }
        else:
            method = {
                "type": "card",
                "card": {"number": card, "exp_month": "12", "exp_year": "34", "cvc": "123"},
            }
        return requests.post(
            f"{self.url}/v1/setup_intents/{intent_id}/confirm",
            json={
                "key": "pk_test_local",
                "client_secret": client_secret,
                "payment_method_data": method,
            },
            timeout=10,
        )

    def complete_setup_authentication(self, client_secret: str) -> requests.Response:
        intent_id = client_secret.split("_secret_")[0]
        return requests.post(
            f"{self.url}/v1/setup_intents/{intent_id}/confirm",
            json={"key": "pk_test_local", "client_secret": client_secret},
            timeout=10,
        )

    def renew(self, subscription_id: str) -> dict:
        """Bill a subscription's next period now (Stripe would on its own clock)."""
        response = requests.post(
            f"{self.url}/_simulator/subscriptions/{subscription_id}/renew", timeout=10
        )
        response.raise_for_status()
        return response.json()

    def api(self, method: str, path: str, **data: object) -> dict:
        """Call the simulator's Stripe API with the secret key (test set-up only)."""
        response = requests.request(
            method,
            f"{self.url}{path}",
            data=data,
            headers={"Authorization": "Bearer sk_test_local"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        self._log_file.close()


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    # SMTP replies to give, in order, before accepting (e.g. "421 busy").
    script: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.script:
            return self.script.pop(0)
        self.messages.append(
            message_from_bytes(envelope.original_content or b"", policy=policy.default)
        )
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


class LiveServer:
    """The Flask app served over real HTTP from a thread."""

    def __init__(self, app) -> None:
        self.port = int(app.config["SETTINGS"].base_url.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


def signed_event(
    event_type: str,
    obj: dict,
    *,
    event_id: str | None = None,
    timestamp: int | None = None,
    secret: str = WEBHOOK_SECRET,
    livemode: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and headers signed as Stripe signs them (HMAC-SHA256 of "t.body")."""
    now = int(time.time()) if timestamp is None else timestamp
    body = json.dumps(
        {
            "id": event_id or f"evt_test_{os.urandom(8).hex()}",
            "object": "event",
            "type": event_type,
            "created": now,
            "livemode": livemode,
            "api_version": "2026-10-28.endive",
            "data": {"object": obj},
        }
    )
    return body.encode(), {
        "Stripe-Signature": sign_webhook_payload(body, secret, now),
        "Content-Type": "application/json",
    }
