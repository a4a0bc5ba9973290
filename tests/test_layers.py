"""The house runs one way: read from the code's own imports, every package imports only packages
on its floor's allowed list, no two packages import each other, and ``core`` imports no feature.

Every import counts, wherever it stands (module level, inside a function, under TYPE_CHECKING):
an import inside a function is still a dependency. When a new package is added it must be given
a floor here, or this test fails and says so.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from halsosamtal.core.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "halsosamtal"

# From the ground up. A package may import packages on lower floors, and on its own floor only
# where listed in SAME_FLOOR (never both ways).
FLOORS: list[set[str]] = [
    {"core"},  # plumbing: settings, database, errors, HTTP edge, CLI plumbing
    {"places"},  # reference data: SCB's municipalities and counties (imports no package)
    {"access", "audit"},  # API clients, keys, roles, authentication; the access log
    {"units", "programmes"},  # the register's care units; programme years
    {"residents"},  # residents, listing history, contact routes
    {"messaging", "cohort"},  # the outbox (channels, texts, delivery); cohort queries
    {"invitations"},  # batches, lifecycle, release of their messages
    {"booking"},  # slots and appointments
    {"results"},  # the talk's results
    {"reports"},  # participation, outcomes, reimbursement
    {"register", "portal", "logreview"},  # compositions: the register import; the resident's
    # portal; the follow-up of the access log
    {"models"},  # the registry of every table
    {"demo"},  # the demo region's year in progress: composes every feature
    {"cli"},  # the command line's root
]
SAME_FLOOR: set[tuple[str, str]] = set()


def _floor_of() -> dict[str, int]:
    return {name: i for i, floor in enumerate(FLOORS) for name in floor}


def _package_imports(root: Path = PACKAGE) -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if parts == ("__init__.py",):
            continue
        source = parts[0] if len(parts) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "halsosamtal":
                    names = [f"halsosamtal.{alias.name}" for alias in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] == "halsosamtal" and len(bits) > 1 and bits[1] != source:
                    edges[source][bits[1]].add(str(path.relative_to(root.parent)))
    return edges


def test_every_package_has_a_floor() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    missing = sorted((packages | modules) - set(_floor_of()))
    assert not missing, f"give these a floor in tests/test_layers.py FLOORS: {missing}"


def test_imports_run_down_the_floors_only() -> None:
    floor = _floor_of()
    upward = [
        f"{source} (floor {floor[source]}) imports {target} (floor {floor[target]}) "
        f"in {', '.join(sorted(files))}"
        for source, targets in _package_imports().items()
        for target, files in targets.items()
        if source in floor
        and target in floor
        and (
            floor[target] > floor[source]
            or (floor[target] == floor[source] and (source, target) not in SAME_FLOOR)
        )
    ]
    assert not upward, "imports that run against the house's order:\n" + "\n".join(upward)


def test_no_two_packages_import_each_other() -> None:
    edges = _package_imports()
    pairs = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, {})})
    assert not pairs, f"packages that import each other: {pairs}"


def test_core_imports_no_feature() -> None:
    assert set(_package_imports().get("core", {})) == set(), _package_imports()["core"]


def test_the_reader_sees_imports_inside_functions_and_from_package_roots(tmp_path: Path) -> None:
    """An import inside a function is a dependency all the same; so is ``from halsosamtal import x``."""
    root = tmp_path / "halsosamtal"
    (root / "units").mkdir(parents=True)
    (root / "units" / "service.py").write_text(
        "def f():\n    from halsosamtal.reports import export\n    from halsosamtal import portal\n"
    )
    edges = _package_imports(root)
    assert set(edges["units"]) == {"reports", "portal"}
    assert edges["units"]["reports"] == {"halsosamtal/units/service.py"}
