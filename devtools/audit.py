"""``make audit``: known vulnerabilities in the locked dependencies, said honestly.

Runs ``pip-audit`` on ``requirements/constraints.txt`` (the locked set) and, when
there is a ``package-lock.json``, ``npm audit``. Both tools can answer "no known
vulnerabilities" without having checked anything: pip-audit when the advisory
service it asks does not know a single package (a mirror without vulnerability
data, no network), npm when the registry has no advisory endpoint. So the
outcome is read from their JSON, and a dependency that was not checked is never
reported as clean.

Exit status: 0 every dependency checked and none vulnerable; 1 vulnerabilities
found; 2 some or all dependencies could not be checked (no advisory database
reached).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLEAN, VULNERABLE, UNAUDITED = 0, 1, 2


@dataclass
class Outcome:
    tool: str
    checked: int = 0
    vulnerable: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    problem: str | None = None  # why nothing could be checked at all

    @property
    def status(self) -> int:
        if self.vulnerable:
            return VULNERABLE
        if self.problem or self.unchecked or not self.checked:
            return UNAUDITED
        return CLEAN

    def report(self) -> str:
        lines = []
        if self.problem:
            lines.append(f"{self.tool}: NOT AUDITED: {self.problem}")
        if self.vulnerable:
            lines.append(f"{self.tool}: {len(self.vulnerable)} known vulnerabilities:")
            lines += [f"  - {v}" for v in self.vulnerable]
        if self.unchecked:
            lines.append(
                f"{self.tool}: {len(self.unchecked)} of {len(self.unchecked) + self.checked} "
                "dependencies could NOT be checked (no advisory database answered for them), "
                f"e.g. {', '.join(self.unchecked[:5])}"
            )
        if self.status == CLEAN:
            lines.append(
                f"{self.tool}: {self.checked} dependencies checked, no known vulnerabilities"
            )
        elif not self.checked and not self.vulnerable and not self.problem:
            lines.append(f"{self.tool}: NOT AUDITED: no dependency was checked")
        return "\n".join(lines)


def read_pip_audit(stdout: str, returncode: int, stderr: str = "") -> Outcome:
    outcome = Outcome("pip-audit")
    try:
        found = json.loads(stdout)
    except ValueError:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        outcome.problem = f"pip-audit failed (exit {returncode}): {last[:300]}"
        return outcome
    for dependency in found.get("dependencies", []):
        name = f"{dependency.get('name')} {dependency.get('version', '')}".strip()
        if dependency.get("skip_reason"):
            outcome.unchecked.append(name)
            continue
        outcome.checked += 1
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            outcome.vulnerable.append(f"{name}: {vuln.get('id')} (fixed in {fixed})")
    return outcome


def read_npm_audit(stdout: str, returncode: int, stderr: str = "") -> Outcome:
    outcome = Outcome("npm audit")
    try:
        found = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        found = {}
    error = found.get("error") if isinstance(found, dict) else None
    if error or ("vulnerabilities" not in found and "metadata" not in found):
        detail = error.get("summary") if isinstance(error, dict) else None
        said = [line for line in stderr.strip().splitlines() if "audit" in line.lower()]
        last = (said or stderr.strip().splitlines() or ["no output"])[0]
        outcome.problem = (
            f"the registry's advisory endpoint did not answer ({(detail or last)[:300]})"
        )
        return outcome
    metadata = found.get("metadata", {})
    outcome.checked = int(metadata.get("dependencies", {}).get("total", 0))
    for name, vuln in found.get("vulnerabilities", {}).items():
        outcome.vulnerable.append(f"{name}: {vuln.get('severity')} ({vuln.get('range', '')})")
    return outcome


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def main() -> int:
    outcomes = []
    pip_audit = shutil.which("pip-audit") or str(Path(sys.executable).parent / "pip-audit")
    done = run([pip_audit, "-r", "requirements/constraints.txt", "--no-deps", "--disable-pip",
                "--progress-spinner", "off", "-f", "json"])  # fmt: skip
    outcomes.append(read_pip_audit(done.stdout, done.returncode, done.stderr))
    if (ROOT / "package-lock.json").exists():
        if shutil.which("npm"):
            done = run(["npm", "audit", "--audit=true", "--json", "--package-lock-only"])
            outcomes.append(read_npm_audit(done.stdout, done.returncode, done.stderr))
        else:
            outcomes.append(Outcome("npm audit", problem="npm is not installed"))
    for outcome in outcomes:
        print(outcome.report())
    status = max(o.status for o in outcomes)
    if status == UNAUDITED:
        print(
            "\nAUDIT INCOMPLETE: no advisory database could be reached for the dependencies "
            "above; this is not a clean bill of health."
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
