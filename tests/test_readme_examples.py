"""The README's example outputs are true: every block marked ``<!-- example: posfleet … -->``
is what that command prints on the sample fleet (``scripts/readme_examples.py``, which
also regenerates them). Issue 13, "Daily use": the README's figures had drifted from what
the commands print."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_examples", ROOT / "scripts" / "readme_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


@pytest.fixture(scope="module")
def sample_db(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(script.sample_database(tmp_path_factory.mktemp("readme")))


def test_readme_examples_come_from_the_commands(script: ModuleType, sample_db: str) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marked = script.MARKED.findall(text)
    assert marked, "no <!-- example: … --> block in the README"
    lines = script.drift(text, sample_db)
    assert not lines, "README examples drifted (python scripts/readme_examples.py):\n" + "\n".join(
        lines[:60]
    )


def test_a_drifted_figure_is_caught(script: ModuleType, sample_db: str) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "170 terminals to replace" in text  # the figure the sample gives
    assert script.drift(
        text.replace("170 terminals to replace", "172 terminals to replace"), sample_db
    )


def test_only_instants_are_normalised(script: ModuleType) -> None:
    assert script.normalise("sent 2026-12-01T04:36:00.783554+00:00 ok") == "sent <instant> ok"
    assert script.normalise("replace by 2026-11-01, 170 terminals") == (
        "replace by 2026-11-01, 170 terminals"
    )
