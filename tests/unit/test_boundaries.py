"""Package boundaries: the API never depends on the workers package or on Playwright."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def test_api_source_never_imports_workers_or_playwright():
    offending = {name for name in _imported_modules("api") if name.split(".")[0] in {"workers", "playwright"}}
    assert offending == set()


def test_shared_source_never_imports_flask_workers_or_playwright():
    offending = {
        name
        for name in _imported_modules("shared")
        if name.split(".")[0] in {"workers", "playwright", "flask", "flask_smorest"}
    }
    assert offending == set()


def test_building_the_api_loads_no_worker_module():
    probe = (
        "import sys; from shared.config import Settings; from api import create_app; "
        "create_app(Settings.from_env({}, DEV_MODE=True, TESTING=True, DATABASE_URL='sqlite://')); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('workers', 'playwright')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
