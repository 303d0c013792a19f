"""How the suite is shared among pytest-xdist workers (``make test`` runs on several).

A module with a module-scoped fixture (the demo's run, a served console, a browser; its own
or from a ``conftest.py`` above it) goes to one worker as a unit per database backend, so
each such fixture is built once, as in a run on one process, while the SQLite and
PostgreSQL halves can run side by side; every other test is a unit of its own. (xdist's
``loadgroup`` would do this from markers, but its group names are lost with pytest 9.2's
structured node ids.) Modules with tests marked ``slow`` are handed out first, so that the
longest ones do not start last and leave one worker running alone at the end.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
_MODULE_SCOPED = re.compile(r"""scope\s*=\s*["']module["']""")
_BACKEND = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]$")


@cache
def _has_module_fixture(path: str) -> bool:
    """Whether the test module at ``path`` (relative to the root) or a ``conftest.py`` in
    its folder or above defines a module-scoped fixture."""
    module = ROOT / path
    if not module.is_file() or module.suffix != ".py":
        return False
    files = [module] + [d / "conftest.py" for d in module.parents if d.is_relative_to(ROOT)]
    return any(f.is_file() and _MODULE_SCOPED.search(f.read_text("utf-8")) for f in files)


def unit_of(nodeid: str) -> str:
    """The unit of work ``nodeid`` is handed out in."""
    path = nodeid.split("::", 1)[0]
    if not _has_module_fixture(path):
        return nodeid
    backend = _BACKEND.search(nodeid)
    return f"{path}::{backend.group(1)}" if backend else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415

    class ModuleFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return ModuleFixtureScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow)  # stable
