"""``make audit`` reads the tools' JSON: an unchecked dependency is never called clean."""

from __future__ import annotations

import json

from devtools.audit import CLEAN, UNAUDITED, VULNERABLE, read_npm_audit, read_pip_audit


def _pip(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_pip_audit_that_checked_nothing_is_not_a_clean_result() -> None:
    # What pip-audit prints here, where PyPI's mirror carries no vulnerability data:
    # every package skipped, "No known vulnerabilities found", exit 0.
    skipped = {"name": "flask", "skip_reason": "Dependency not found on PyPI and could not be"}
    outcome = read_pip_audit(_pip(skipped, {**skipped, "name": "stripe"}), 0)
    assert outcome.status == UNAUDITED
    assert "2 of 2 dependencies could NOT be checked" in outcome.report()
    assert "no known vulnerabilities" not in outcome.report()


def test_pip_audit_partly_checked_is_incomplete() -> None:
    outcome = read_pip_audit(
        _pip({"name": "flask", "version": "3.1.3", "vulns": []},
             {"name": "stripe", "skip_reason": "not found"}), 0)  # fmt: skip
    assert outcome.status == UNAUDITED
    assert "1 of 2" in outcome.report()


def test_pip_audit_clean_and_vulnerable() -> None:
    clean = read_pip_audit(_pip({"name": "flask", "version": "3.1.3", "vulns": []}), 0)
    assert clean.status == CLEAN
    assert "1 dependencies checked, no known vulnerabilities" in clean.report()
    found = read_pip_audit(
        _pip({"name": "jinja2", "version": "2.0", "vulns": [
            {"id": "GHSA-xxxx", "fix_versions": ["3.1.5"], "aliases": []}]}), 1)  # fmt: skip
    assert found.status == VULNERABLE
    assert "jinja2 2.0: GHSA-xxxx (fixed in 3.1.5)" in found.report()


def test_pip_audit_that_failed_outright() -> None:
    outcome = read_pip_audit("", 1, "ConnectionError: Failed to resolve 'api.osv.dev'")
    assert outcome.status == UNAUDITED
    assert "NOT AUDITED" in outcome.report()
    assert "api.osv.dev" in outcome.report()


def test_npm_audit_without_an_advisory_endpoint() -> None:
    # What npm prints here: the registry answers 405 to the bulk advisory request.
    stderr = (
        "npm warn audit 405 Method Not Allowed - POST "
        "https://registry.example/-/npm/v1/security/advisories/bulk\n"
        "npm error audit endpoint returned an error\n"
    )
    outcome = read_npm_audit("", 1, stderr)
    assert outcome.status == UNAUDITED
    assert "405 Method Not Allowed" in outcome.report()


def test_npm_audit_clean_and_vulnerable() -> None:
    clean = read_npm_audit(
        json.dumps({"vulnerabilities": {}, "metadata": {"dependencies": {"total": 1}}}), 0
    )
    assert clean.status == CLEAN
    found = read_npm_audit(
        json.dumps({"vulnerabilities": {"axe-core": {"severity": "high", "range": "<4"}},
                    "metadata": {"dependencies": {"total": 1}}}), 1)  # fmt: skip
    assert found.status == VULNERABLE
