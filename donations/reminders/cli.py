"""`flask --app wsgi reminders send-due`: send what is due now (for cron)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

reminders_cli = AppGroup("reminders", help="Remind me later.")


@reminders_cli.command("send-due")
def send_due_command() -> None:
    """Send every reminder that is due now, then retry mail that is due for it."""
    from donations.mail.sender import send_pending_emails
    from donations.reminders.tasks import send_due_reminders

    result = send_due_reminders()
    skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.skipped.items()))
    click.echo(f"Reminders due: {result.claimed}; sent: {result.sent}; skipped: {skipped or 0}.")
    retried = send_pending_emails()
    if retried:
        click.echo(f"Emails sent on retry: {retried}.")
