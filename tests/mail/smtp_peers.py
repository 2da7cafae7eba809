"""SMTP servers with scripted misbehaviour, on loopback (aiosmtpd, nothing mocked)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.harness import free_port


@dataclass
class RecordingPeer:
    """Accepts everything; counts connections (EHLOs) and keeps raw envelopes."""

    envelopes: list[tuple[list[str], bytes]] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.envelopes.append((list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 OK"

    def parsed(self) -> list[EmailMessage]:
        return [
            message_from_bytes(raw, policy=policy.default)
            for _, raw in self.envelopes
        ]


@dataclass
class HangingPeer:
    """Takes the message, then never answers the end of DATA."""

    data_started: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_started.set()
        await asyncio.sleep(120)
        return "451 too late"


@contextmanager
def serve(handler: Any) -> Iterator[str]:
    """Run ``handler`` as an SMTP server on loopback; yield its smtp:// URL."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
