"""The import rules of docs/architecture.md, read from the source with ``ast``.

Every ``import`` and ``from … import`` counts, at the top of a module or inside a function
(a function-local import is still a dependency; it only loads later). Relative imports
are resolved against the importing module. What is checked:

- ``protocols`` imports nothing else of ours; ``terminal_sim`` imports only ``protocols``;
  ``fleet`` never imports ``terminal_sim``;
- in ``fleet``, each package imports only its own modules, ``core``, and the packages in
  layers below its own (:data:`LAYERS`); ``core`` imports no other package of ``fleet``;
- nothing imports ``cli`` or ``sample``; only the front ends (``cli``, ``web``) import
  ``reports``. ``tests``, ``bench`` and ``scripts`` may import anything.

:data:`KNOWN` lists the imports that break a rule today, each with the reason and who
removes it; the test fails on any other, and on an entry of :data:`KNOWN` that is no
longer there (so that the list only shrinks).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("access", "webhooks"),
    ("inventory", "replacements"),
    ("notices",),
    ("fees",),
    ("device",),
    ("rollout", "swaps"),
    ("reports", "web", "sample"),
    ("cli",),
)
"""``fleet``'s packages, bottom to top: a package imports ``core`` and the layers below."""

RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
FRONT_ENDS = ("cli", "web")
"""The only packages that import ``reports``."""
NOBODY_IMPORTS = ("cli", "sample")

KNOWN: dict[tuple[str, str], str] = {}
"""Imports that break a rule today. Each names who takes it away; none may be added."""

TRANSITIONAL: set[str] = set()
"""Modules kept only for the imports in :data:`KNOWN`: nothing else may import them."""


def modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports (``from a import b`` gives ``a.b`` when that is a
    module of ours, else ``a``), with its line; top-level and function-local alike."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if _is_ours_module(full) else base), node.lineno


def _is_ours_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def fleet_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "fleet" and len(parts) > 1 else None


def breach(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (``None``: it may)."""
    top, target_top = importer.partition(".")[0], imported.partition(".")[0]
    if target_top not in ("protocols", "terminal_sim", "fleet"):
        return None  # the standard library or a dependency
    if top == "protocols":
        return None if target_top == "protocols" else "protocols imports nothing else of ours"
    if top == "terminal_sim":
        if target_top == "fleet":
            return "terminal_sim imports only protocols"
        return None
    if target_top == "terminal_sim":
        return "fleet never imports terminal_sim"
    if target_top == "protocols":
        return None
    if imported in TRANSITIONAL and not importer.startswith(imported.rpartition(".")[0]):
        return f"{imported} is transitional: import {imported.rpartition('.')[0]}"
    source, target = fleet_package(importer), fleet_package(imported)
    if target is None or source == target:
        return None
    if source is None:
        return None  # fleet/__init__ itself
    if target in NOBODY_IMPORTS:
        return f"nothing imports fleet.{target}"
    if target == "reports":
        return None if source in FRONT_ENDS else "only the front ends import fleet.reports"
    if source == "core":
        return "core imports no domain"
    if source not in RANK or target not in RANK:
        return f"fleet.{source if source not in RANK else target} is in no layer"
    if RANK[target] >= RANK[source]:
        return (
            f"fleet.{source} (layer {RANK[source]}) imports fleet.{target} (layer {RANK[target]})"
        )
    return None


def breaches() -> dict[tuple[str, str], tuple[str, int, str]]:
    found: dict[tuple[str, str], tuple[str, int, str]] = {}
    for package in ("protocols", "terminal_sim", "fleet"):
        for module, path in modules(package):
            for imported, line in imports(module, path):
                why = breach(module, imported)
                if why is not None:
                    found.setdefault((module, imported), (str(path.relative_to(ROOT)), line, why))
    return found


def test_every_fleet_package_has_a_layer() -> None:
    packages = {p.name for p in (ROOT / "fleet").iterdir() if (p / "__init__.py").is_file()}
    assert packages - set(RANK) == set(), "add the new package to LAYERS (and the docs)"


def test_imports_follow_the_layers() -> None:
    found = breaches()
    new = [
        f"{path}:{line}: {importer} imports {imported}: {why}"
        for (importer, imported), (path, line, why) in sorted(found.items())
        if (importer, imported) not in KNOWN
    ]
    assert new == [], "forbidden imports (docs/architecture.md):\n" + "\n".join(new)
    gone = sorted(set(KNOWN) - set(found))
    assert gone == [], f"no longer imported: take these out of KNOWN: {gone}"


@pytest.mark.parametrize(
    ("importer", "imported", "rule"),
    [
        ("fleet.core.db", "fleet.inventory.terminals", "core imports no domain"),
        ("fleet.inventory.catalog", "fleet.replacements.rules", "layer"),
        ("fleet.notices.outbox", "fleet.swaps.service", "layer"),
        ("fleet.fees.publishing", "fleet.cli.common", "nothing imports fleet.cli"),
        ("fleet.swaps.service", "fleet.reports.data", "only the front ends"),
        ("fleet.swaps.service", "fleet.sample.seed", "nothing imports fleet.sample"),
        ("fleet.device.sync", "terminal_sim.terminal", "never imports terminal_sim"),
        ("protocols.codec", "fleet.core.errors", "protocols imports nothing"),
        ("terminal_sim.cli", "fleet.cli", "terminal_sim imports only protocols"),
    ],
)
def test_a_forbidden_import_is_caught(importer: str, imported: str, rule: str) -> None:
    why = breach(importer, imported)
    assert why is not None and rule in why


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("fleet.swaps.service", "fleet.notices.outbox"),
        ("fleet.cli.report", "fleet.reports.data"),
        ("fleet.reports.build", "fleet.replacements.rules"),
        ("fleet.device.push", "protocols.session"),
        ("terminal_sim.serve", "protocols.link"),
        ("fleet.inventory.terminals", "fleet.core.db"),
        ("tests.fleet.conftest", "fleet.sample.seed"),
    ],
)
def test_an_allowed_import_passes(importer: str, imported: str) -> None:
    assert breach(importer, imported) is None


def test_function_local_and_relative_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\n"
        "def f():\n"
        "    from fleet.cli import common\n"
        "    from . import visit\n"
        "    from .. import core\n",
        encoding="utf-8",
    )
    found = dict(imports("fleet.swaps.mod", source))
    assert found["fleet.cli.common"] == 3
    assert "fleet.swaps.visit" in found and "fleet.core" in found


def test_no_fleet_module_over_400_lines_without_its_reason() -> None:
    """Issue 12: a module over 400 lines says why in its docstring ("Over 400 lines …")."""
    root = Path(__file__).resolve().parents[1] / "fleet"
    unexplained = []
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= 400:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "Over 400 lines" not in " ".join(doc.split()):
            unexplained.append(str(path.relative_to(root.parent)))
    assert unexplained == []
