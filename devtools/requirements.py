"""Print the project's requirements from pyproject.toml, one a line, for pip.

``python -m devtools.requirements simulator`` lists the runtime dependencies
and the ``simulator`` extra: what ``make run`` installs. It installs them
without building the project itself (``make run`` serves from the checkout),
which saves an isolated build environment and its warnings on a first run.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name, optional = project["name"], project.get("optional-dependencies", {})
    found: list[str] = list(project["dependencies"])
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in optional[extra]:
            own = re.fullmatch(rf"{re.escape(name)}\[([\w,\s-]+)\]", requirement)
            if own:  # "donations[simulator]": another of our extras
                pending += [e.strip() for e in own.group(1).split(",")]
            else:
                found.append(requirement)
    return found


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
