"""``flask --app wsgi experiments …``: define, start, end and read A/B tests of the ask."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from donations.ask.services import load_ask_config
from donations.db import commit, db
from donations.embed.experiments.models import Experiment
from donations.embed.experiments.services import (
    ExperimentError,
    create_experiment,
    experiment_results,
    list_experiments,
    parse_variants,
)
from donations.staff.experiments import apply_guardrails, end_audited, start_audited
from donations.staff.services import audit

experiments_cli = AppGroup("experiments", help="A/B tests of the ask.")


def percent(value: str) -> float:
    """A percentage as typed ("2", "2.5") -> a fraction (0.02, 0.025)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not 0 < number < 10_000:
        raise click.BadParameter(f"{value!r} is not a percentage such as 2 or 2.5")
    return number / 100


def _experiment(slug: str) -> Experiment:
    experiment = db.session.scalar(select(Experiment).where(Experiment.slug == slug))
    if experiment is None:
        raise click.ClickException(f"no experiment named {slug!r}")
    return experiment


@experiments_cli.command("create")
@click.argument("slug")
@click.option("--title", required=True, help="What is being tested, for staff.")
@click.option(
    "--variants",
    "variants_json",
    required=True,
    help='JSON (or @file.json): [{"key": "control", "share": 50}, {"key": "b", "share": 50, '
    '"headline": {"en": "...", "ru": "..."}}]; the first is control.',
)
@click.option("--baseline", required=True, type=percent, help="Control's expected rate, % (2).")
@click.option("--mde", required=True, type=percent, help="Smallest relative lift to detect, %.")
@click.option("--alpha", default="5", type=percent, show_default=True, help="Significance, %.")
@click.option("--power", default="80", type=percent, show_default=True, help="Power, %.")
@click.option("--margin", default="20", type=percent, show_default=True, help="Guardrail, %.")
@click.option("--minimum", default=1000, show_default=True, help="Guardrail's impressions.")
def create(
    slug: str,
    title: str,
    variants_json: str,
    baseline: float,
    mde: float,
    alpha: float,
    power: float,
    margin: float,
    minimum: int,
) -> None:
    """Define a draft experiment; `experiments start SLUG` serves it."""
    try:
        text = (
            Path(variants_json[1:]).read_text() if variants_json.startswith("@") else variants_json
        )
        variants = parse_variants(json.loads(text), load_ask_config())
        experiment = create_experiment(
            slug=slug,
            title=title,
            variants=variants,
            baseline=baseline,
            mde=mde,
            alpha=alpha,
            power=power,
            guardrail_margin=margin,
            guardrail_minimum=minimum,
        )
    except (ExperimentError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    audit("experiment.created", target=f"experiment:{experiment.slug}", variants=variants)
    commit()
    results = experiment_results(experiment)
    click.echo(f"Experiment {experiment.slug} created; {results.planned} impressions per variant.")


def _change(slug: str, change: Callable[[Experiment], None], outcome: str) -> None:
    experiment = _experiment(slug)
    try:
        change(experiment)
    except ExperimentError as exc:
        raise click.ClickException(str(exc)) from None
    commit()
    click.echo(f"Experiment {slug} {outcome}.")


@experiments_cli.command("start")
@click.argument("slug")
def start(slug: str) -> None:
    """Serve the experiment in the embed (one runs at a time)."""
    _change(slug, start_audited, "running")


@experiments_cli.command("end")
@click.argument("slug")
def end(slug: str) -> None:
    """Stop serving the experiment; its results stay."""
    _change(slug, end_audited, "ended")


@experiments_cli.command("check")
def check() -> None:
    """Apply the guardrail to the running experiment now (beat does it every minute)."""
    stopped = apply_guardrails()
    commit()
    for variant in stopped:
        click.echo(f"stopped {variant.attribution}: {variant.stopped_reason}")
    if not stopped:
        click.echo("No variant breaches the guardrail.")


@experiments_cli.command("show")
@click.argument("slug", required=False)
def show(slug: str | None) -> None:
    """Every experiment (or one) with its results per variant."""
    for experiment in [_experiment(slug)] if slug else list_experiments():
        results = experiment_results(experiment)
        click.echo(
            f"{experiment.slug}\t{experiment.status}\t{results.verdict}"
            f"\tplanned {results.planned} per variant"
        )
        for arm in results.arms:
            rate = f"{arm.rate:.2%}" if arm.rate is not None else "-"
            interval = f"[{arm.interval.low:.2%}, {arm.interval.high:.2%}]" if arm.interval else ""
            state = "stopped" if arm.variant.stopped_at else "served"
            click.echo(
                f"  {arm.variant.key}\t{arm.variant.share}%\t{state}\t{arm.impressions} shown"
                f"\t{arm.conversions} gifts\t{rate} {interval}"
            )
