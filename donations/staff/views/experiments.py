"""A/B tests of the ask: everyone on staff reads the results; admins define, start and stop."""

from __future__ import annotations

import json
from decimal import Decimal

from babel import Locale
from babel.numbers import NumberPattern, parse_pattern
from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _

from donations.ask.services import load_ask_config
from donations.db import commit, db
from donations.embed.experiments.models import Experiment, ExperimentVariant
from donations.embed.experiments.services import (
    ExperimentError,
    create_experiment,
    experiment_results,
    list_experiments,
    parse_variants,
    planned_for,
    stop_variant,
)
from donations.money import exponent
from donations.staff.auth import require_role
from donations.staff.experiments import apply_guardrails, end_audited, start_audited
from donations.staff.forms import ActionForm, ExperimentForm
from donations.staff.models import Role
from donations.staff.services import audit
from donations.staff.views.blueprint import bp


def _page_lang() -> str:
    return str(get_locale() or "en")


def _pattern(kind: str, decimals: int) -> NumberPattern:
    """The page language's own percent or currency pattern, with a fixed number of decimals."""
    locale = Locale.parse(_page_lang())
    formats = locale.percent_formats if kind == "percent" else locale.currency_formats
    pattern = parse_pattern(formats[None] if kind == "percent" else formats["standard"])
    pattern.frac_prec = (decimals, decimals)
    return pattern


def percent_text(value: float | None) -> str:
    """A rate as the page's language writes it, to two decimals: "2.05%", "2,05 %"."""
    if value is None:
        return "—"
    return _pattern("percent", 2).apply(value, Locale.parse(_page_lang()))


def per_impression_text(minor: float, currency: str) -> str:
    """Revenue per impression in major units, to four decimals (it is often a few cents)."""
    major = Decimal(str(minor)) / (10 ** exponent(currency))
    return _pattern("currency", 4).apply(
        major, Locale.parse(_page_lang()), currency=currency, currency_digits=False
    )


def _list(form: ExperimentForm, status: int = 200) -> ResponseReturnValue:
    experiments = list_experiments()
    return render_template(
        "staff/experiments.html",
        experiments=experiments,
        planned={e.id: planned_for(e)[0] for e in experiments},
        form=form,
        action_form=ActionForm(),
        page_lang=_page_lang(),
    ), status


@bp.get("/experiments")
@require_role(Role.VIEWER)
def experiments() -> ResponseReturnValue:
    return _list(ExperimentForm(formdata=None))


@bp.post("/experiments")
@require_role(Role.ADMIN)
def create_experiment_view() -> ResponseReturnValue:
    form = ExperimentForm()
    if not form.validate_on_submit():
        return _list(form, 400)
    try:
        variants = parse_variants(json.loads(form.variants.data or ""), load_ask_config())
        experiment = create_experiment(
            slug=form.slug.data or "",
            title=form.title.data or "",
            variants=variants,
            baseline=form.baseline.fraction or 0,
            mde=form.mde.fraction or 0,
            alpha=form.alpha.fraction or 0,
            power=form.power.fraction or 0,
            guardrail_margin=form.margin.fraction or 0,
            guardrail_minimum=int(form.minimum.data or "0"),
        )
    except (ExperimentError, ValueError) as exc:
        db.session.rollback()
        form.variants.errors = [_("This experiment cannot be used: %(why)s", why=str(exc))]
        return _list(form, 400)
    audit("experiment.created", target=f"experiment:{experiment.slug}", variants=variants)
    commit()
    flash(_("Experiment %(name)s created as a draft.", name=experiment.slug))
    return redirect(url_for("staff.experiment", experiment_id=experiment.id), 303)


@bp.get("/experiments/<int:experiment_id>")
@require_role(Role.VIEWER)
def experiment(experiment_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Experiment, experiment_id)
    return render_template(
        "staff/experiment.html",
        experiment=found,
        results=experiment_results(found),
        action_form=ActionForm(),
        page_lang=_page_lang(),
        changes_json=lambda v: json.dumps(v.changes, ensure_ascii=False, indent=1),
        percent_text=percent_text,
        per_impression_text=per_impression_text,
    )


EXPERIMENT_ACTIONS = ("start", "end", "check")


@bp.post(
    "/experiments/<int:experiment_id>/<any("
    + ", ".join(f"'{a}'" for a in EXPERIMENT_ACTIONS)
    + "):action>"
)
@require_role(Role.ADMIN)
def experiment_action(experiment_id: int, action: str) -> ResponseReturnValue:
    found = db.get_or_404(Experiment, experiment_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("staff.experiment", experiment_id=found.id), 303)
    try:
        match action:
            case "start":
                start_audited(found)
                message = _("Running: the embed serves it within a few minutes.")
            case "end":
                end_audited(found)
                message = _("Ended: no longer served.")
            case _:
                stopped = apply_guardrails()
                message = (
                    _("Stopped by the guardrail: %(keys)s", keys=", ".join(v.key for v in stopped))
                    if stopped
                    else _("No variant breaches the guardrail.")
                )
    except ExperimentError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return back
    commit()
    flash(message)
    return back


@bp.post("/experiments/<int:experiment_id>/variants/<int:variant_id>/stop")
@require_role(Role.ADMIN)
def stop_experiment_variant(experiment_id: int, variant_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Experiment, experiment_id)
    variant = db.session.get(ExperimentVariant, variant_id)
    if variant is None or variant.experiment_id != found.id:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("staff.experiment", experiment_id=found.id), 303)
    try:
        stop_variant(variant, "stopped by staff")
    except ExperimentError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return back
    audit("experiment.variant_stopped", target=f"experiment:{found.slug}", variant=variant.key)
    commit()
    flash(_("Variant %(key)s stopped: its readers see the usual ask.", key=variant.key))
    return back
