"""``flask --app wsgi campaigns …``: create campaigns and read their meters."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import select

from donations.db import commit, db
from donations.money import InvalidAmount, Money
from donations.support.campaigns import CampaignError, create_campaign, forget_meter, meter_for
from donations.support.models import Campaign

campaigns_cli = AppGroup("campaigns", help="Campaigns with a goal and a meter.")


def _day(value: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-12-01") from None


@campaigns_cli.command("create")
@click.argument("slug")
@click.option("--title", "title_en", required=True, help="The meter's caption in English.")
@click.option("--title-ru", default="", help="The caption in Russian.")
@click.option("--start", "start", required=True, help="First day (UTC), YYYY-MM-DD.")
@click.option("--end", "end", required=True, help="Last day (UTC, inclusive), YYYY-MM-DD.")
@click.option(
    "--goal",
    required=True,
    help="An amount in major units (with --currency) or a number of supporters.",
)
@click.option("--currency", default=None, help="ISO code for an amount goal.")
def create(
    slug: str, title_en: str, title_ru: str, start: str, end: str, goal: str, currency: str | None
) -> None:
    """Create a campaign; gifts name it with data-campaign="SLUG" in the embed."""
    try:
        target = Money.from_major(goal, currency).amount if currency else int(goal)
        campaign = create_campaign(
            slug=slug,
            title={"en": title_en, **({"ru": title_ru} if title_ru else {})},
            starts_at=_day(start),
            ends_at=_day(end) + timedelta(days=1),
            goal=target,
            currency=currency,
        )
    except (CampaignError, InvalidAmount, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    commit()
    forget_meter()
    click.echo(f"Campaign {campaign.slug} created.")


@campaigns_cli.command("show")
def show() -> None:
    """Every campaign with its meter."""
    for campaign in db.session.scalars(select(Campaign).order_by(Campaign.starts_at)):
        meter = meter_for(campaign)
        goal = Money(meter.goal, meter.currency).format() if meter.currency else meter.goal
        raised = Money(meter.raised, meter.currency).format() if meter.currency else meter.raised
        click.echo(
            f"{campaign.slug}\t{campaign.starts_at:%Y-%m-%d}..{campaign.ends_at:%Y-%m-%d}"
            f"\t{raised} of {goal} ({meter.percent}%)"
        )
