"""The areas depend one way: every import points down the order in the README, none goes round.

Reads every module's imports (those inside functions too, since a lazy
import is still an arrow) and fails on an import from a higher area, from an
area not placed in the order, or on any cycle between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "donations"

# The shared kernel is every module directly in donations/ (money.py, db.py,
# config.py, ...) other than the wiring: imported by everyone, it imports no
# area (its modules may import each other). Areas are the sub-packages.
# The areas, lowest first: an area may import the kernel, itself and the areas
# before it, never one after it. A new area goes just above the highest area
# it imports. ``manage`` (the supporters' own portal) is on top: it orchestrates
# supporters, payments, reminders, mail, erasure and the audit log (staff's).
AREAS = (
    "mail",
    "supporters",
    "payments",
    "ask",
    "reminders",
    "operations",
    "support",
    "embed",
    "staff",
    "manage",
)
# The wiring on top: the app factory, the providers and the CLI registry.
WIRING = frozenset({"__init__", "app", "cli", "providers"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(name: str) -> Iterator[str]:
    """The project modules ``name`` imports, anywhere in its body."""
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(name, node)
            # `from a.b import c`: the module a.b.c if there is one, else a.b.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target != "donations":
                yield target


GRAPH = {name: sorted(set(imports(name))) for name in MODULES}


def area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_kernel(top: str) -> bool:
    return top not in WIRING and (PACKAGE / f"{top}.py").is_file()


def rank(name: str) -> int:
    top = area(name)
    if top in WIRING:
        return len(AREAS)
    if is_kernel(top):
        return -1
    return AREAS.index(top)


def test_every_module_belongs_to_a_placed_area() -> None:
    unplaced = {area(name) for name in MODULES if not is_kernel(area(name))} - WIRING - set(AREAS)
    assert not unplaced, f"place {sorted(unplaced)} in AREAS (tests/test_architecture.py)"


def upward(graph: dict[str, list[str]]) -> list[str]:
    return [
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if rank(target) > rank(name)
    ]


def cycles(graph: dict[str, list[str]]) -> list[str]:
    found: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in graph.get(name, []):
            if state.get(target) == 1:
                found.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name)
    return found


def test_imports_point_down() -> None:
    assert upward(GRAPH) == []


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_the_checks_see_what_they_forbid() -> None:
    # The graph is read from the sources (an empty one would pass anything).
    assert "donations.staff.views" in GRAPH["donations.app"]
    assert "donations.staff.services" in GRAPH["donations.staff.views.admin"]
    wrong = {
        "donations.supporters.services": ["donations.payments.services", "donations.db"],
        "donations.payments.services": ["donations.supporters.services"],
        "donations.db": ["donations.mail.models"],
    }
    assert upward(wrong) == [
        "donations.supporters.services -> donations.payments.services",
        "donations.db -> donations.mail.models",
    ]
    assert cycles(wrong) == [
        "donations.supporters.services -> donations.payments.services"
        " -> donations.supporters.services"
    ]


# -- one commit: donations.db.commit runs what waited for the commit ------------------


def raw_commits(source: str) -> list[int]:
    """Lines calling `<x>.session.commit()`, `<x>.session().commit()` or `session.commit()`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "commit"
        ):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Call):
            owner = owner.func
        if (isinstance(owner, ast.Attribute) and owner.attr == "session") or (
            isinstance(owner, ast.Name) and owner.id == "session"
        ):
            found.append(node.lineno)
    return found


def test_only_db_py_commits_the_session() -> None:
    # A raw commit skips the after-commit queue: mail and tasks registered with
    # on_commit() would wait for a later commit, or never leave.
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for name, path in MODULES.items()
        if name != "donations.db"
        for line in raw_commits(path.read_text())
    ]
    assert offenders == [], "call donations.db.commit() instead"


def test_the_commit_check_sees_what_it_forbids() -> None:
    assert raw_commits(
        "db.session.commit()\ndb.session().commit()\nsession.commit()\n"
        "commit()\nconnection.commit()\ndb.session.flush()\n"
    ) == [1, 2, 3]
    assert raw_commits((PACKAGE / "db.py").read_text()) != []
