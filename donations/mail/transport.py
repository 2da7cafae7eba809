"""Where built messages go: an SMTP server, or files in the embedded default."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit


class MailTransport(Protocol):
    """Sends messages one after another; ``close`` ends the batch."""

    def send(self, message: EmailMessage) -> None: ...

    def close(self) -> None: ...


class MailError(Exception):
    """Sending failed; ``code`` is the SMTP reply code when the server gave one."""

    def __init__(self, detail: str, code: int | None = None) -> None:
        super().__init__(detail)
        self.code = code


class TemporaryMailError(MailError):
    """Try again later (4xx replies, timeouts, refused connections)."""


class PermanentMailError(MailError):
    """The server refused this message for good (5xx replies)."""

    @property
    def mailbox_unavailable(self) -> bool:
        """The recipient does not exist or will never accept mail (RFC 5321 §4.2.3)."""
        return self.code in (550, 551, 553)


class FileTransport:
    """Writes each message as an .eml file (the embedded default)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        token = str(message["Message-ID"]).strip("<>").split("@")[0]
        path = self.directory / f"{token}.eml"
        path.write_bytes(bytes(message))

    def close(self) -> None:  # stub-check: ok (the protocol asks for it; nothing to release)
        pass


class SMTPTransport:
    """Delivers through an SMTP server given as ``smtp[s|+starttls]://user:pw@host:port``.

    One connection is opened on the first ``send`` and reused for the ones
    that follow until ``close``, so a batch of reminders costs one handshake.
    """

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host,
                self.port,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username and self.password:
                client.login(self.username, self.password)
        except BaseException:
            client.close()
            raise
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def send(self, message: EmailMessage) -> None:
        try:
            reused = self._client is not None
            if self._client is None:
                self._client = self._connect()
            try:
                self._client.send_message(message)
            except smtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed an idle connection between two messages:
                # reconnect once rather than count it against this message.
                self._drop()
                self._client = self._connect()
                self._client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentMailError(str(exc), codes[0]) from exc
            raise TemporaryMailError(str(exc), codes[0] if codes else None) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421 or not 400 <= exc.smtp_code < 600:
                # 421: the server is closing the connection (RFC 5321 §3.8).
                self._drop()
            detail = f"{exc.smtp_code} {exc.smtp_error!r}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentMailError(detail, exc.smtp_code) from exc
            raise TemporaryMailError(detail, exc.smtp_code) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TemporaryMailError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        if self._client is None:
            return
        try:
            self._client.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._drop()
